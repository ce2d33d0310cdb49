package dev.qnat.io;

import java.lang.foreign.MemorySegment;
import java.util.zip.CRC32C;

/** CRC-32C (Castagnoli) of memory segments of any size. */
public final class Crc32c {
    private static final long CHUNK = 1 << 30;

    private Crc32c() {}

    public static int of(MemorySegment segment) {
        CRC32C crc = new CRC32C();
        for (long offset = 0; offset < segment.byteSize(); offset += CHUNK) {
            crc.update(segment.asSlice(offset, Math.min(CHUNK, segment.byteSize() - offset)).asByteBuffer());
        }
        return (int) crc.getValue();
    }
}
