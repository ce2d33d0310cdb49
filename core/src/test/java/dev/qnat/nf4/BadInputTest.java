package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Each bad input gets its own exception, and the destinations keep every byte they had. */
class BadInputTest {
    private static final byte SENTINEL = 0x5A;

    private static byte[] sentinelCodes(int n) {
        byte[] codes = new byte[n];
        Arrays.fill(codes, SENTINEL);
        return codes;
    }

    private static float[] sentinelAbsmax(int n) {
        float[] absmax = new float[n];
        Arrays.fill(absmax, 42f);
        return absmax;
    }

    private static void assertUntouched(byte[] codes, float[] absmax) {
        byte[] expectedCodes = sentinelCodes(codes.length);
        assertArrayEquals(expectedCodes, codes, "codes were written");
        assertArrayEquals(sentinelAbsmax(absmax.length), absmax, "absmax was written");
    }

    @ParameterizedTest
    @ValueSource(floats = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY})
    void nonFiniteF32IsRefusedWithItsIndexAndNothingWritten(float bad) {
        float[] x = new float[1000];
        Arrays.fill(x, 0.5f);
        x[777] = bad;
        byte[] codes = sentinelCodes(500);
        float[] absmax = sentinelAbsmax(16);
        NonFiniteValueException e = assertThrows(NonFiniteValueException.class, () -> Nf4.quantize(x, 64, codes, absmax));
        assertEquals(777, e.index());
        assertEquals(Float.floatToIntBits(bad), Float.floatToIntBits(e.value()));
        assertTrue(e.getMessage().contains("element 777"), e.getMessage());
        assertUntouched(codes, absmax);
    }

    @ParameterizedTest
    @EnumSource(value = FloatType.class, names = {"F16", "BF16"})
    void nonFiniteHalfIsRefused(FloatType type) {
        short[] x = new short[301];
        Arrays.fill(x, type.floatToHalfBits(1.5f));
        x[300] = type.floatToHalfBits(Float.NEGATIVE_INFINITY);
        x[299] = type.floatToHalfBits(Float.NaN);
        byte[] codes = sentinelCodes(151);
        float[] absmax = sentinelAbsmax(5);
        NonFiniteValueException e = assertThrows(NonFiniteValueException.class,
                () -> Nf4.quantize(x, type, 64, codes, absmax));
        assertEquals(299, e.index(), "the first bad element is reported");
        assertTrue(Float.isNaN(e.value()));
        assertUntouched(codes, absmax);
    }

    @Test
    void parallelQuantizeChecksEverythingBeforeWriting() {
        int n = 1 << 20;
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment src = arena.allocate(4L * n);
            src.setAtIndex(TestData.FLOAT, n - 1, Float.NaN); // the last range holds the only bad element
            MemorySegment codes = arena.allocate(n / 2).fill(SENTINEL);
            MemorySegment absmax = arena.allocate(4L * n / 64).fill(SENTINEL);
            NonFiniteValueException e = assertThrows(NonFiniteValueException.class,
                    () -> Nf4.quantizeParallel(src, FloatType.F32, 64, codes, absmax, pool));
            assertEquals(n - 1, e.index());
            assertEquals(-1, codes.mismatch(arena.allocate(codes.byteSize()).fill(SENTINEL)), "codes were written");
            assertEquals(-1, absmax.mismatch(arena.allocate(absmax.byteSize()).fill(SENTINEL)), "absmax was written");
        } finally {
            pool.shutdownNow();
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 3, 63, -2, Integer.MIN_VALUE, (1 << 20) + 2, Integer.MAX_VALUE})
    void badBlockSizesAreNamed(int blockSize) {
        byte[] codes = sentinelCodes(8);
        float[] absmax = sentinelAbsmax(8);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Nf4.quantize(new float[16], blockSize, codes, absmax));
        assertTrue(e.getMessage().contains("got " + blockSize), e.getMessage());
        assertUntouched(codes, absmax);
        assertThrows(IllegalArgumentException.class, () -> Nf4.dequantize(codes, absmax, blockSize, new float[16]));
    }

    @Test
    void destinationsTooSmallAreRefused() {
        float[] x = new float[129];
        byte[] shortCodes = sentinelCodes(64); // needs 65
        float[] absmax = sentinelAbsmax(3);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Nf4.quantize(x, 64, shortCodes, absmax));
        assertTrue(e.getMessage().contains("codes holds 64 bytes but 129 elements need 65"), e.getMessage());
        assertUntouched(shortCodes, absmax);

        byte[] codes = sentinelCodes(65);
        float[] shortAbsmax = sentinelAbsmax(2); // needs 3
        e = assertThrows(IllegalArgumentException.class, () -> Nf4.quantize(x, 64, codes, shortAbsmax));
        assertTrue(e.getMessage().contains("absmax holds 8 bytes but 129 elements need 12"), e.getMessage());
        assertUntouched(codes, shortAbsmax);

        float[] out = new float[129];
        assertThrows(IllegalArgumentException.class, () -> Nf4.dequantize(shortCodes, absmax, 64, out));
        assertThrows(IllegalArgumentException.class, () -> Nf4.dequantize(codes, shortAbsmax, 64, out));
        assertArrayEquals(new float[129], out);
    }

    @Test
    void lengthMismatchIsRefused() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(7); // not a whole number of F32 or BF16 elements
            MemorySegment codes = arena.allocate(4).fill(SENTINEL);
            MemorySegment absmax = arena.allocate(4).fill(SENTINEL);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Nf4.quantize(src, FloatType.BF16, 2, codes, absmax));
            assertTrue(e.getMessage().contains("7 bytes, not a whole number of BF16 elements"), e.getMessage());
            MemorySegment out = arena.allocate(6);
            assertThrows(IllegalArgumentException.class, () -> Nf4.dequantize(codes, absmax, 2, out, FloatType.F32));
            assertEquals(-1, codes.mismatch(arena.allocate(4).fill(SENTINEL)));
        }
    }

    @Test
    void readOnlyDestinationsAndWrongArrayTypesAreRefused() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(16);
            MemorySegment codes = arena.allocate(2).asReadOnly();
            MemorySegment absmax = arena.allocate(4);
            assertThrows(IllegalArgumentException.class, () -> Nf4.quantize(src, FloatType.F32, 4, codes, absmax));
        }
        assertThrows(IllegalArgumentException.class,
                () -> Nf4.quantize(new short[4], FloatType.F32, 4, new byte[2], new float[1]));
        assertThrows(NullPointerException.class, () -> Nf4.quantize((float[]) null, 4, new byte[2], new float[1]));
    }
}
