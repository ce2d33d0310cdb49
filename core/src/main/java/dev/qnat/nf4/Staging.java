package dev.qnat.nf4;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Slices of the matrices' inputs as the kernels read them: in place, except from a mapped file, whose
 * slice is first copied into a buffer of the thread (off-heap, as StagedNf4Kernels does). A vector load
 * from a page that a truncated file no longer backs kills the JVM with SIGBUS; the copy turns the same
 * fault into an {@code InternalError}. A slice is one row range of a matrix, a few hundred KiB at most.
 */
final class Staging {
    private static final ThreadLocal<Staging> BUFFER = ThreadLocal.withInitial(Staging::new);

    private MemorySegment buffer = Arena.ofAuto().allocate(1 << 16, 64);

    private Staging() {}

    /** Bytes {@code [offset, offset + length)} of {@code source}, copied out of it when it is mapped. */
    static MemorySegment of(MemorySegment source, long offset, long length) {
        if (!source.isMapped()) {
            return source.asSlice(offset, length);
        }
        Staging staging = BUFFER.get();
        if (staging.buffer.byteSize() < length) {
            staging.buffer = Arena.ofAuto().allocate(length, 64);
        }
        MemorySegment staged = staging.buffer.asSlice(0, length);
        MemorySegment.copy(source, offset, staged, 0, length);
        return staged;
    }
}
