package dev.qnat.format;

import dev.qnat.internal.JsonInput;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;

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

    /** An error in a fixed-header field. */
    FormatException error(QnatField field, String problem) {
        return error(field.name(), field.offset(), problem);
    }

    /** An error in {@code field} of the structure at {@code base}, which {@code where} names. */
    FormatException error(String where, QnatField field, long base, String problem) {
        return error(where + " " + field.name(), field.at(base), problem);
    }

    /** An integer field (U8, U32 or U64) of the fixed header. */
    long get(QnatField field) throws FormatException {
        return integer(field.name(), field, 0);
    }

    /** An integer field (U8, U32 or U64) of the structure at {@code base}, which {@code where} names. */
    long get(String where, QnatField field, long base) throws FormatException {
        return integer(where + " " + field.name(), field, base);
    }

    private long integer(String label, QnatField field, long base) throws FormatException {
        return switch (field.type()) {
            case U8 -> u8(label, field.at(base));
            case U32 -> u32(label, field.at(base));
            case U64 -> u64(label, field.at(base));
            case F32, BYTES -> throw new IllegalArgumentException(field.name() + " is not an integer field");
        };
    }

    /** A U32 field of the fixed header that must lie in [min, max]. */
    int u32In(QnatField field, long min, long max) throws FormatException {
        return u32In(field.name(), field.offset(), min, max);
    }

    /** A U32 field of the structure at {@code base} that must lie in [min, max]. */
    int u32In(String where, QnatField field, long base, long min, long max) throws FormatException {
        return u32In(where + " " + field.name(), field.at(base), min, max);
    }

    /** An F32 field of the structure at {@code base}. */
    float f32(String where, QnatField field, long base) throws FormatException {
        return f32(where + " " + field.name(), field.at(base));
    }

    /** A reserved field of the fixed header, which must be zeros. */
    void zeros(QnatField field) throws FormatException {
        zeros(field.name(), field.offset(), field.size());
    }

    /** A reserved field of the structure at {@code base}, which must be zeros. */
    void zeros(String where, QnatField field, long base) throws FormatException {
        zeros(where + " " + field.name(), field.at(base), field.size());
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
            return JsonInput.strictUtf8(bytes);
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
