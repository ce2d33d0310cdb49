package dev.qnat.format;

import dev.qnat.nf4.FloatType;
import java.util.Optional;

/**
 * Tensor element types, with safetensors' names and QNAT's one-byte codes. F4 and the F6 types are
 * smaller than a byte: a tensor of them must fill whole bytes.
 */
public enum DType {
    BOOL(0, 8), U8(1, 8), I8(2, 8), I16(3, 16), U16(4, 16), F16(5, 16), BF16(6, 16), I32(7, 32), U32(8, 32),
    F32(9, 32), F64(10, 64), I64(11, 64), U64(12, 64), F8_E5M2(13, 8), F8_E4M3(14, 8), F8_E8M0(15, 8), C64(16, 64),
    F4(17, 4), F6_E2M3(18, 6), F6_E3M2(19, 6);

    private static final DType[] BY_CODE = values();

    private final int code;
    private final int bits;

    DType(int code, int bits) {
        this.code = code;
        this.bits = bits;
    }

    /** The code stored in a QNAT tensor entry. */
    public int code() {
        return code;
    }

    /** Bits per element. */
    public int bits() {
        return bits;
    }

    /**
     * Bytes taken by {@code count} elements, or -1 when they do not fill whole bytes or the size would
     * reach 2^62.
     */
    public long sizeOf(long count) {
        if (count < 0 || count > (ElementCount.LIMIT - 1) / bits) {
            return -1;
        }
        long totalBits = count * bits;
        return totalBits % 8 == 0 ? totalBits / 8 : -1;
    }

    /** The dtype with this QNAT code, if there is one. */
    public static Optional<DType> ofCode(int code) {
        return code >= 0 && code < BY_CODE.length ? Optional.of(BY_CODE[code]) : Optional.empty();
    }

    /** The dtype with this safetensors name, if there is one. */
    public static Optional<DType> ofName(String name) {
        for (DType type : BY_CODE) {
            if (type.name().equals(name)) {
                return Optional.of(type);
            }
        }
        return Optional.empty();
    }

    /** The codec's float type for F32, F16 and BF16: the dtypes NF4 quantizes from and to. */
    public Optional<FloatType> floatType() {
        return switch (this) {
            case F32 -> Optional.of(FloatType.F32);
            case F16 -> Optional.of(FloatType.F16);
            case BF16 -> Optional.of(FloatType.BF16);
            default -> Optional.empty();
        };
    }

    /** The dtype of a codec float type. */
    public static DType of(FloatType type) {
        return switch (type) {
            case F32 -> F32;
            case F16 -> F16;
            case BF16 -> BF16;
        };
    }
}
