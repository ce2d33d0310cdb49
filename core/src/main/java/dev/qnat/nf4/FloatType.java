package dev.qnat.nf4;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The floating-point element types the NF4 codec reads and writes. Elements are stored little-endian;
 * F16 and BF16 values are carried as their 16-bit patterns (in a {@code short} when held in Java).
 */
public enum FloatType {
    /** IEEE 754 binary32. */
    F32(4),
    /** IEEE 754 binary16 (half precision). */
    F16(2),
    /** bfloat16: the upper 16 bits of a binary32. */
    BF16(2);

    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final int byteSize;

    FloatType(int byteSize) {
        this.byteSize = byteSize;
    }

    /**
     * Bytes per element.
     *
     * @return 4 for F32, 2 for F16 and BF16
     */
    public int byteSize() {
        return byteSize;
    }

    /**
     * The largest finite value of this type: anything larger in magnitude becomes infinity here.
     *
     * @return that value as a float (exact): 65504 for F16, about 3.39e38 for BF16
     */
    public float maxFinite() {
        return switch (this) {
            case F32 -> Float.MAX_VALUE;
            case F16 -> Float.float16ToFloat((short) 0x7BFF);
            case BF16 -> Float.intBitsToFloat(0x7F7F0000);
        };
    }

    /**
     * Element {@code index} of little-endian elements of this type in {@code segment}, as a float (exact).
     *
     * @param segment the elements, at any alignment
     * @param index the element's index, counted in elements, not bytes
     * @return its value; F16 and BF16 are widened without rounding
     * @throws IndexOutOfBoundsException the element does not lie wholly inside {@code segment}
     */
    public float read(MemorySegment segment, long index) {
        return this == F32 ? segment.getAtIndex(LE_FLOAT, index) : halfBitsToFloat(segment.getAtIndex(LE_SHORT, index));
    }

    /**
     * Stores {@code value} as element {@code index} of this type, rounded to nearest even for F16 and BF16.
     *
     * @param segment the little-endian elements, at any alignment; writable
     * @param index the element's index, counted in elements, not bytes
     * @param value the value to store; one that rounds beyond {@link #maxFinite} becomes an infinity
     * @throws IndexOutOfBoundsException the element does not lie wholly inside {@code segment}
     * @throws IllegalArgumentException {@code segment} is read-only
     */
    public void write(MemorySegment segment, long index, float value) {
        if (this == F32) {
            segment.setAtIndex(LE_FLOAT, index, value);
        } else {
            segment.setAtIndex(LE_SHORT, index, floatToHalfBits(value));
        }
    }

    /**
     * The float value of a 16-bit pattern of this type (F16 or BF16).
     *
     * @param bits the element's 16 bits
     * @return its value, exact; NaN for a NaN pattern
     * @throws IllegalStateException this type is F32
     */
    public float halfBitsToFloat(short bits) {
        return switch (this) {
            case F16 -> Float.float16ToFloat(bits);
            case BF16 -> Float.intBitsToFloat(bits << 16);
            case F32 -> throw new IllegalStateException("F32 elements are not 16-bit patterns");
        };
    }

    /**
     * The 16-bit pattern of this type (F16 or BF16) nearest to {@code value}, ties to even. F16 rounds
     * exactly as {@link Float#floatToFloat16}; BF16 keeps a NaN a NaN (quiet, same sign).
     *
     * @param value the value to round; one that rounds beyond {@link #maxFinite} becomes an infinity
     * @return the pattern's 16 bits
     * @throws IllegalStateException this type is F32
     */
    public short floatToHalfBits(float value) {
        return switch (this) {
            case F16 -> Float.floatToFloat16(value);
            case BF16 -> floatToBf16(value);
            case F32 -> throw new IllegalStateException("F32 elements are not 16-bit patterns");
        };
    }

    private static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundedUpward = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (roundedUpward >>> 16);
    }
}
