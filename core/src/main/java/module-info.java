/**
 * NF4 (QLoRA's 4-bit NormalFloat) quantization for the JVM: the block codec ({@link dev.qnat.nf4.Nf4}),
 * QNAT files ({@link dev.qnat.format.QnatFile}, {@link dev.qnat.format.QnatWriter}), safetensors
 * checkpoints, bitsandbytes NF4 import and export, and conversions between them.
 *
 * <p>The codec runs on SIMD kernels written with the incubating Vector API when the application adds
 * its module ({@code --add-modules jdk.incubator.vector}); without it, qnat logs one warning and runs the
 * scalar reference kernels. The kernels themselves ({@code dev.qnat.nf4.kernel}) are not exported.
 *
 * <p>Output files have their disk blocks reserved first with libc's {@code posix_fallocate}, through the
 * foreign function API, so that a full disk is an {@code IOException} rather than a crash while a mapping
 * is written: run the JVM with {@code --enable-native-access=dev.qnat.core} ({@code ALL-UNNAMED} on the
 * class path), or it prints a warning.
 */
module dev.qnat.core {
    // Optional: read only when the application resolves it; the kernels fall back to scalar code otherwise.
    requires static jdk.incubator.vector;
    // HotSpot's flags tell whether C2 runs, without which the vector kernels would be slower than scalar.
    requires jdk.management;
    // com.sun.nio.file.ExtendedOpenOption.DIRECT, looked up by name: QNAT files are written with direct I/O.
    requires jdk.unsupported;
    requires com.fasterxml.jackson.core;

    exports dev.qnat;
    exports dev.qnat.bnb;
    exports dev.qnat.concurrent;
    exports dev.qnat.convert;
    exports dev.qnat.format;
    exports dev.qnat.io;
    exports dev.qnat.nf4;
    exports dev.qnat.safetensors;
}
