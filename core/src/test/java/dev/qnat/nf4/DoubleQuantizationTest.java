package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class DoubleQuantizationTest {

    @Test
    void tableIsTheSignedDynamicMap() {
        float[] table = DoubleQuantization.table();
        assertEquals(256, table.length);
        for (int i = 1; i < table.length; i++) {
            assertTrue(table[i - 1] < table[i], "sorted and distinct at " + i);
        }
        assertEquals(0f, table[127]);
        assertEquals(1f, table[255]);
        assertEquals(-0.99296874, table[0], 1e-7);
        // Seven decades of 2^i means each side of zero: the smallest magnitude is 0.55e-6.
        assertEquals(5.5e-7, table[128], 1e-12);
        assertEquals(-table[128], table[126]);
        for (int k = 0; k < 127; k++) {
            assertEquals(-table[254 - k], table[k], "symmetric at " + k);
        }
    }

    @Test
    void encodePicksANeighbourOfTheNearestEntry() {
        float[] table = DoubleQuantization.table();
        SplittableRandom random = new SplittableRandom(TestData.seed());
        for (int i = 0; i < 200_000; i++) {
            float x = (float) random.nextDouble(-1, 1) * (float) Math.pow(10, -random.nextInt(7));
            int code = DoubleQuantization.encode(x);
            int nearest = 0;
            for (int k = 1; k < 256; k++) {
                if (Math.abs((double) x - table[k]) < Math.abs((double) x - table[nearest])) {
                    nearest = k;
                }
            }
            // The float32 midpoint test can only differ from the exact nearest in a one-ulp window.
            if (code != nearest) {
                assertEquals(1, Math.abs(code - nearest), "x=" + x);
                double exactMidpoint = ((double) table[code] + table[nearest]) / 2;
                assertTrue(Math.abs(x - exactMidpoint) <= Math.ulp((float) exactMidpoint), "x=" + x);
            }
        }
    }

    /** The step-function encoder against the port of bitsandbytes' search, around every place a code changes. */
    @Test
    void encodeIsTheReferenceEverywhere() {
        float[] table = DoubleQuantization.table();
        java.util.List<Float> probes = new java.util.ArrayList<>();
        for (int k = 0; k < 256; k++) {
            float t = table[k];
            float mid = k < 255 ? (t + table[k + 1]) * 0.5f : t;
            for (float center : new float[] {t, mid, -t, -mid}) {
                float f = center;
                for (int u = 0; u < 4; u++) {
                    f = Math.nextDown(f);
                }
                for (int u = 0; u < 9; u++, f = Math.nextUp(f)) {
                    probes.add(f);
                }
            }
        }
        SplittableRandom random = new SplittableRandom(TestData.seed());
        for (int i = 0; i < 2_000_000; i++) {
            probes.add(Float.intBitsToFloat(random.nextInt()));
            probes.add((float) random.nextDouble(-1.01, 1.01) * (float) Math.pow(10, -random.nextInt(8)));
        }
        probes.addAll(java.util.List.of(0f, -0f, 1f, -1f, Float.MAX_VALUE, -Float.MAX_VALUE, Float.MIN_VALUE,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN));
        for (float x : probes) {
            assertEquals(DoubleQuantization.encodeReference(table, x), DoubleQuantization.encode(x),
                    () -> "x=" + x + " (bits 0x" + Integer.toHexString(Float.floatToRawIntBits(x)) + ")");
        }
    }

    @Test
    void reconstructionIsWithinOneTableStep() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        float[] table = DoubleQuantization.table();
        for (int c = 0; c < 50; c++) {
            int blocks = random.nextInt(1, 3000);
            float[] absmax = new float[blocks];
            for (int b = 0; b < blocks; b++) {
                absmax[b] = random.nextInt(20) == 0 ? 0f : (float) Math.abs(random.nextGaussian() * 0.05 + 0.06);
            }
            byte[] codes = new byte[blocks];
            float[] nested = new float[(int) DoubleQuantization.groupCount(blocks)];
            float offset = DoubleQuantization.quantize(MemorySegment.ofArray(absmax), blocks, MemorySegment.ofArray(codes),
                    MemorySegment.ofArray(nested));
            float[] restored = new float[blocks];
            DoubleQuantization.dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(nested), offset, table, blocks,
                    MemorySegment.ofArray(restored));
            double mean = 0;
            for (float a : absmax) {
                mean += a;
            }
            assertEquals((float) (mean / blocks), offset, "offset is the float64 mean rounded to float32");
            assertEquals(offset, DoubleQuantization.offset(MemorySegment.ofArray(absmax), blocks));
            for (int b = 0; b < blocks; b++) {
                int code = Byte.toUnsignedInt(codes[b]);
                double step = Math.max(code < 255 ? table[code + 1] - table[code] : 0,
                        code > 0 ? table[code] - table[code - 1] : 0);
                double bound = step * nested[b / 256] + 2 * Math.ulp(Math.max(Math.abs(absmax[b]), Math.abs(offset)));
                assertTrue(Math.abs(restored[b] - absmax[b]) <= bound, "seed " + seed + " case " + c + " block " + b
                        + ": " + absmax[b] + " came back as " + restored[b] + ", bound " + bound);
            }
        }
    }

    @Test
    void aConstantGroupComesBackExactly() {
        float[] absmax = new float[300];
        java.util.Arrays.fill(absmax, 0.125f);
        byte[] codes = new byte[300];
        float[] nested = new float[2];
        float offset = DoubleQuantization.quantize(MemorySegment.ofArray(absmax), 300, MemorySegment.ofArray(codes),
                MemorySegment.ofArray(nested));
        float[] restored = new float[300];
        DoubleQuantization.dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(nested), offset,
                DoubleQuantization.table(), 300, MemorySegment.ofArray(restored));
        assertEquals(0.125f, offset);
        for (float r : restored) {
            assertEquals(0.125f, r);
        }
    }

    @Test
    void costsFourPoint127BitsPerWeightAtBlock64() {
        long weights = 64L * 256 * 1000;
        long blocks = Nf4.blockCount(weights, 64);
        long bytes = Nf4.packedSize(weights) + blocks + 4 * DoubleQuantization.groupCount(blocks) + 4;
        assertEquals(4.127, 8.0 * bytes / weights, 0.0005);
        long plain = Nf4.packedSize(weights) + 4 * blocks;
        assertEquals(4.5, 8.0 * plain / weights, 1e-9);
    }

    @Test
    void nonFiniteAbsmaxIsRefused() {
        float[] absmax = {1f, Float.NaN};
        assertThrows(NonFiniteValueException.class, () -> DoubleQuantization.quantize(MemorySegment.ofArray(absmax), 2,
                MemorySegment.ofArray(new byte[2]), MemorySegment.ofArray(new float[1])));
        NonFiniteValueException e = assertThrows(NonFiniteValueException.class,
                () -> DoubleQuantization.offset(MemorySegment.ofArray(absmax), 2));
        assertEquals(1, e.index());
    }
}
