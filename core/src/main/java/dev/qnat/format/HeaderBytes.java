package dev.qnat.format;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Bounds-checked little-endian reads from a mapped file, each failure a {@link FormatException}
 * naming the file, the field, its offset, and what was wrong.
 */
final class HeaderBytes {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    final MemorySegment file;
    final String fileName;

    HeaderBytes(MemorySegment file, String fileName) {
        this.file = file;
        this.fileName = fileName;
    }

    long size() {
        return file.byteSize();
    }

    FormatException error(String field, long offset, String problem) {
        return new FormatException(fileName + ": " + field + " at offset " + offset + ": " + problem);
    }

    private void need(String field, long offset, long length) throws FormatException {
        if (offset < 0 || length < 0 || offset > file.byteSize() - length) {
            throw error(field, offset, "needs " + length + " bytes but the file ends at " + file.byteSize());
        }
    }

    int u8(String field, long offset) throws FormatException {
        need(field, offset, 1);
        return Byte.toUnsignedInt(file.get(ValueLayout.JAVA_BYTE, offset));
    }

    /** An unsigned 32-bit value, as a long. */
    long u32(String field, long offset) throws FormatException {
        need(field, offset, 4);
        return Integer.toUnsignedLong(file.get(U32, offset));
    }

    /** An unsigned 64-bit value; values of 2^63 and more are refused, no length or offset gets there. */
    long u64(String field, long offset) throws FormatException {
        need(field, offset, 8);
        long value = file.get(U64, offset);
        if (value < 0) {
            throw error(field, offset, "value " + Long.toUnsignedString(value) + " is beyond any file");
        }
        return value;
    }

    float f32(String field, long offset) throws FormatException {
        need(field, offset, 4);
        return file.get(F32, offset);
    }

    /** A u32 that must lie in [min, max]. */
    int u32In(String field, long offset, long min, long max) throws FormatException {
        long value = u32(field, offset);
        if (value < min || value > max) {
            throw error(field, offset, "value " + value + ", expected " + (min == max ? "" + min : min + " to " + max));
        }
        return (int) value;
    }

    /** Valid UTF-8 of {@code length} bytes at {@code offset}. */
    String utf8(String field, long offset, long length) throws FormatException {
        need(field, offset, length);
        if (length > Integer.MAX_VALUE - 8) {
            throw error(field, offset, "a string of " + length + " bytes");
        }
        ByteBuffer bytes = file.asSlice(offset, length).asByteBuffer();
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes).toString();
        } catch (CharacterCodingException e) {
            throw error(field, offset, "not valid UTF-8");
        }
    }

    void zeros(String field, long offset, long length) throws FormatException {
        need(field, offset, length);
        for (long i = 0; i < length; i++) {
            if (file.get(ValueLayout.JAVA_BYTE, offset + i) != 0) {
                throw error(field, offset + i, "reserved byte is " + file.get(ValueLayout.JAVA_BYTE, offset + i)
                        + ", expected 0");
            }
        }
    }
}
