package dev.qnat.nf4;

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

    private final int byteSize;

    FloatType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** The float value of a 16-bit pattern of this type (F16 or BF16). */
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
