/**
 * Hugging Face safetensors checkpoints: a mapped, validated reader of single files
 * ({@link dev.qnat.safetensors.SafetensorsFile}) and of sharded ones through their index
 * ({@link dev.qnat.safetensors.Checkpoint}), and an all-or-nothing writer
 * ({@link dev.qnat.safetensors.SafetensorsWriter}).
 */
package dev.qnat.safetensors;
