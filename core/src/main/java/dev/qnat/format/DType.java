package dev.qnat.format;

import dev.qnat.nf4.FloatType;
import java.util.Optional;

/**
 * Tensor element types, with safetensors' names and QNAT's one-byte codes. F4 and the F6 types are
 * smaller than a byte: a tensor of them must fill whole bytes.
 */
public enum DType {
    /** Boolean, one byte per element. */
    BOOL(0, 8),
    /** Unsigned 8-bit integer. */
    U8(1, 8),
    /** Signed 8-bit integer. */
    I8(2, 8),
    /** Signed 16-bit integer. */
    I16(3, 16),
    /** Unsigned 16-bit integer. */
    U16(4, 16),
    /** IEEE 754 binary16 (half precision); NF4 quantizes from it. */
    F16(5, 16),
    /** bfloat16: the top 16 bits of an f32; NF4 quantizes from it. */
    BF16(6, 16),
    /** Signed 32-bit integer. */
    I32(7, 32),
    /** Unsigned 32-bit integer. */
    U32(8, 32),
    /** IEEE 754 binary32; NF4 quantizes from it. */
    F32(9, 32),
    /** IEEE 754 binary64. */
    F64(10, 64),
    /** Signed 64-bit integer. */
    I64(11, 64),
    /** Unsigned 64-bit integer. */
    U64(12, 64),
    /** 8-bit float with 5 exponent and 2 mantissa bits. */
    F8_E5M2(13, 8),
    /** 8-bit float with 4 exponent and 3 mantissa bits. */
    F8_E4M3(14, 8),
    /** 8-bit exponent only, no sign or mantissa: a power-of-two scale. */
    F8_E8M0(15, 8),
    /** Complex number of two f32, real part first. */
    C64(16, 64),
    /** 4-bit float (E2M1), two elements per byte. */
    F4(17, 4),
    /** 6-bit float with 2 exponent and 3 mantissa bits. */
    F6_E2M3(18, 6),
    /** 6-bit float with 3 exponent and 2 mantissa bits. */
    F6_E3M2(19, 6);

    private static final DType[] BY_CODE = values();

    private final int code;
    private final int bits;

    DType(int code, int bits) {
        this.code = code;
        this.bits = bits;
    }

    /**
     * The code stored in a QNAT tensor entry.
     *
     * @return the dtype byte of the entry, 0 to 19
     */
    public int code() {
        return code;
    }

    /**
     * Bits per element.
     *
     * @return 4, 6, 8, 16, 32 or 64
     */
    public int bits() {
        return bits;
    }

    /**
     * Bytes taken by {@code count} elements, or -1 when they do not fill whole bytes or the size would
     * reach 2^62.
     *
     * @param count number of elements; a negative count gives -1
     * @return the size in bytes, or -1
     */
    public long sizeOf(long count) {
        if (count < 0 || count > (ElementCount.LIMIT - 1) / bits) {
            return -1;
        }
        long totalBits = count * bits;
        return totalBits % 8 == 0 ? totalBits / 8 : -1;
    }

    /**
     * The dtype with this QNAT code, if there is one.
     *
     * @param code the dtype byte of a QNAT tensor entry
     * @return the dtype, or empty for a code outside 0 to 19
     */
    public static Optional<DType> ofCode(int code) {
        return code >= 0 && code < BY_CODE.length ? Optional.of(BY_CODE[code]) : Optional.empty();
    }

    /**
     * The dtype with this safetensors name, if there is one.
     *
     * @param name a safetensors dtype name such as {@code "BF16"}, matched exactly (case included)
     * @return the dtype, or empty for an unknown name or null
     */
    public static Optional<DType> ofName(String name) {
        for (DType type : BY_CODE) {
            if (type.name().equals(name)) {
                return Optional.of(type);
            }
        }
        return Optional.empty();
    }

    /**
     * The codec's float type for F32, F16 and BF16: the dtypes NF4 quantizes from and to.
     *
     * @return the float type of the same name, or empty for every other dtype
     */
    public Optional<FloatType> floatType() {
        return switch (this) {
            case F32 -> Optional.of(FloatType.F32);
            case F16 -> Optional.of(FloatType.F16);
            case BF16 -> Optional.of(FloatType.BF16);
            default -> Optional.empty();
        };
    }

    /**
     * The dtype of a codec float type.
     *
     * @param type F32, F16 or BF16
     * @return the dtype of the same name
     */
    public static DType of(FloatType type) {
        return switch (type) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
    }
}
