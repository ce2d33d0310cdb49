/**
 * Whole-checkpoint conversions: safetensors to QNAT ({@link dev.qnat.convert.Quantizer}) and a QNAT file back
 * to safetensors ({@link dev.qnat.convert.Dequantizer}).
 */
package dev.qnat.convert;
