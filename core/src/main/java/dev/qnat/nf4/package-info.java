/**
 * The NF4 codec: {@link dev.qnat.nf4.Nf4} quantizes blocks of F32, F16 or BF16 values to 4-bit codes and
 * one absmax scale per block, and back, bit for bit as bitsandbytes does (src/spec/nf4-codec.md);
 * {@link dev.qnat.nf4.DoubleQuantization} quantizes the scales themselves, as QLoRA does. Its kernels are
 * chosen once per JVM: SIMD ones when {@code jdk.incubator.vector} is resolved, the scalar reference otherwise.
 */
package dev.qnat.nf4;
