package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The float to F16/BF16 rounding of the vector kernels against the scalar one, over every sign, exponent
 * and top-ten mantissa bits, with the low bits that decide rounding (ties, just above, just below). A block
 * of code 15 (level 1.0) dequantizes to its absmax exactly, so the absmax values are the floats converted.
 */
@Tag("widths")
class HalfConversionTest {
    /** Low 13 bits; the sweep of the upper 19 bits puts BF16's ties (bit 15) in place as well. */
    private static final int[] LOW_BITS = {0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF};

    @ParameterizedTest
    @EnumSource(FloatType.class)
    void vectorRoundingEqualsScalarRounding(FloatType out) {
        int blockSize = 32;
        int blocks = (1 << 19) * LOW_BITS.length;
        long count = (long) blocks * blockSize;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment absmax = arena.allocate(4L * blocks);
            int b = 0;
            for (int high = 0; high < 1 << 19; high++) {
                for (int low : LOW_BITS) {
                    float value = Float.intBitsToFloat(high << 13 | low);
                    // NaN payloads are not compared bit for bit; nanStaysNaN covers them.
                    absmax.setAtIndex(TestData.FLOAT, b++, Float.isNaN(value) ? 1f : value);
                }
            }
            MemorySegment codes = arena.allocate(count / 2).fill((byte) 0xFF);
            BothKernels.assertAgree("dequantized " + out, "every absmax bit pattern", (k, a) -> {
                MemorySegment dst = a.allocate(count * out.byteSize());
                k.dequantize(codes, absmax, blockSize, count, 0, blocks, dst, out);
                return new MemorySegment[] {dst};
            }, mismatch -> ", absmax bits 0x" + Integer.toHexString(Float.floatToRawIntBits(
                    absmax.getAtIndex(TestData.FLOAT, mismatch / out.byteSize() / blockSize))));
        }
    }

    @ParameterizedTest
    @EnumSource(value = FloatType.class, names = {"F16", "BF16"})
    void nanStaysNaN(FloatType out) {
        short[] dst = new short[64];
        float[] absmax = {Float.NaN, Float.intBitsToFloat(0x7F800001)};
        byte[] codes = new byte[32];
        java.util.Arrays.fill(codes, (byte) 0xF0);
        Nf4.dequantize(codes, absmax, 32, dst, out);
        for (short bits : dst) {
            assertTrue(Float.isNaN(out.halfBitsToFloat(bits)), "0x" + Integer.toHexString(bits & 0xFFFF));
        }
    }
}
