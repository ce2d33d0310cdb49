package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.fail;

import dev.qnat.nf4.kernel.Nf4KernelProvider;
import dev.qnat.nf4.kernel.Nf4Kernels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.LongFunction;

/**
 * Lucene's way of testing kernels: one operation, run on the scalar reference and on the vector kernels
 * this JVM chose, each writing fresh outputs, which must agree byte for byte. A case is then one line.
 */
final class BothKernels {
    static final Nf4Kernels VECTOR = Nf4KernelProvider.kernels();
    static final Nf4Kernels SCALAR = Nf4KernelProvider.scalar();

    /** An operation of the kernels: writes its outputs into segments it allocates from {@code arena}. */
    @FunctionalInterface
    interface Operation {
        MemorySegment[] run(Nf4Kernels kernels, Arena arena);
    }

    private BothKernels() {}

    /**
     * Runs {@code operation} on both kernels and fails, naming {@code what}, the output, the byte and
     * {@code label} (the case and its seed), at the first byte where they differ.
     */
    static void assertAgree(String what, String label, Operation operation) {
        try (Arena arena = Arena.ofConfined()) {
            assertSame(operation.run(SCALAR, arena), operation.run(VECTOR, arena), what, label, i -> "");
        }
    }

    /** The same, with {@code detail} describing the byte where they differ (e.g. the input behind it). */
    static void assertAgree(String what, String label, Operation operation, LongFunction<String> detail) {
        try (Arena arena = Arena.ofConfined()) {
            assertSame(operation.run(SCALAR, arena), operation.run(VECTOR, arena), what, label, detail);
        }
    }

    /** {@code expected} (the scalar kernels' outputs) and {@code actual} agree byte for byte. */
    static void assertSame(MemorySegment[] expected, MemorySegment[] actual, String what, String label,
                           LongFunction<String> detail) {
        for (int i = 0; i < expected.length; i++) {
            String output = expected.length == 1 ? what : what + ", output " + i;
            long mismatch = expected[i].mismatch(actual[i]);
            if (mismatch >= 0) {
                fail(output + " differ at byte " + mismatch + ": scalar " + byteAt(expected[i], mismatch) + ", "
                        + VECTOR.name() + " " + byteAt(actual[i], mismatch) + detail.apply(mismatch) + "; " + label);
            }
        }
    }

    private static String byteAt(MemorySegment segment, long offset) {
        return offset < segment.byteSize() ? Byte.toString(segment.get(ValueLayout.JAVA_BYTE, offset)) : "end";
    }
}
