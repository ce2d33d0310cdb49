package dev.qnat.io;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.zip.CRC32C;

/**
 * CRC-32C (Castagnoli) of memory segments of any size. Off-heap bytes are copied out in chunks first:
 * the CRC intrinsic reads memory directly, and a mapped page that the file no longer backs (truncated by
 * another process) would kill the JVM there, while the copy turns the fault into an {@code InternalError}.
 */
public final class Crc32c {
    private static final int CHUNK = 1 << 16;
    private static final ThreadLocal<byte[]> BUFFER = ThreadLocal.withInitial(() -> new byte[CHUNK]);

    private Crc32c() {}

    /**
     * The CRC of the segments' bytes one after another.
     *
     * @param segments the bytes to checksum, in order, as if concatenated; none gives the CRC of no bytes, 0
     * @return the CRC-32C, its 32 bits in an int
     */
    public static int of(MemorySegment... segments) {
        CRC32C crc = new CRC32C();
        for (MemorySegment segment : segments) {
            update(crc, segment);
        }
        return (int) crc.getValue();
    }

    /**
     * Adds a segment's bytes to a running CRC.
     *
     * @param crc the running CRC-32C
     * @param segment the bytes to add
     */
    public static void update(CRC32C crc, MemorySegment segment) {
        if (segment.heapBase().isPresent()) {
            crc.update(segment.asByteBuffer());
            return;
        }
        byte[] buffer = BUFFER.get();
        for (long offset = 0; offset < segment.byteSize(); offset += CHUNK) {
            int length = (int) Math.min(CHUNK, segment.byteSize() - offset);
            MemorySegment.copy(segment, ValueLayout.JAVA_BYTE, offset, buffer, 0, length);
            crc.update(buffer, 0, length);
        }
    }
}
