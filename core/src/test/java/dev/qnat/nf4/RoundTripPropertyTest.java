package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import dev.qnat.nf4.TestData.Shape;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Every reconstructed element is the codebook level nearest to {@code v = x * (1 / absmax)}, times absmax,
 * with the nearest level found here by double-precision distances. The one place the two rules part is
 * a window of one ulp at a threshold, because a float32 threshold is not the exact midpoint of its levels;
 * there the codec keeps the promised threshold rule (the bitsandbytes one), which this test checks too.
 */
class RoundTripPropertyTest {
    private static final int CASES = 3000;

    @Test
    void reconstructionIsTheNearestLevelTimesAbsmax() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        int[] blockSizes = KernelEquivalenceTest.BLOCK_SIZES;
        long thresholdWindowHits = 0;
        for (int c = 0; c < CASES; c++) {
            int length = random.nextInt(0, 3000);
            int blockSize = blockSizes[random.nextInt(blockSizes.length)];
            Shape shape = Shape.values()[random.nextInt(Shape.values().length)];
            FloatType type = FloatType.values()[random.nextInt(FloatType.values().length)];
            String label = "seed " + seed + " (-Dqnat.test.seed=" + seed + "), case " + c + ": length " + length
                    + ", block " + blockSize + ", " + shape + ", " + type;
            thresholdWindowHits += checkCase(TestData.values(shape, length, blockSize, random), blockSize, type, label);
        }
        System.out.println("round trip: " + CASES + " cases from seed " + seed + ", " + thresholdWindowHits
                + " elements in a threshold's one-ulp window");
    }

    /** Checks one input; returns how many elements fell in a window where the two rules differ. */
    private static long checkCase(float[] values, int blockSize, FloatType type, String label) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = TestData.encode(values, type, arena);
            int length = values.length;
            byte[] codes = new byte[(int) Nf4.packedSize(length)];
            float[] absmax = new float[(int) Nf4.blockCount(length, blockSize)];
            float[] out = new float[length];
            Nf4.quantize(src, type, blockSize, MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax));
            Nf4.dequantize(codes, absmax, blockSize, out);
            long hits = 0;
            for (int b = 0; b < absmax.length; b++) {
                int start = b * blockSize;
                int end = Math.min(length, start + blockSize);
                float max = 0;
                for (int i = start; i < end; i++) {
                    max = Math.max(max, Math.abs(type.read(src, i)));
                }
                assertEquals(max, absmax[b], "absmax of block " + b + "; " + label);
                float reciprocal = 1f / max;
                for (int i = start; i < end; i++) {
                    float x = type.read(src, i);
                    int code = (codes[i / 2] >> (4 * (i & 1))) & 0xF;
                    String where = "element " + i + " x=" + x + " absmax=" + max + " code=" + code + "; " + label;
                    assertEquals(Nf4Codebook.level(code) * max, out[i], "reconstruction of " + where);
                    if (max == 0f) {
                        assertEquals(Nf4Codebook.ZERO_CODE, code, where);
                    } else if (Float.isInfinite(reciprocal)) {
                        // absmax below 2^-128: as in bitsandbytes, v = x * inf sends 0 to NaN (code 0)
                        // and every other element to -inf or +inf (code 0 or 15).
                        assertEquals(x > 0 ? 15 : 0, code, "reciprocal overflow rule, " + where);
                    } else {
                        hits += checkNearest(x * reciprocal, code, where);
                    }
                }
            }
            return hits;
        }
    }

    private static int checkNearest(float v, int code, String where) {
        int nearest = 0;
        for (int k = 1; k < 16; k++) {
            if (Math.abs((double) v - Nf4Codebook.level(k)) < Math.abs((double) v - Nf4Codebook.level(nearest))) {
                nearest = k;
            }
        }
        if (nearest == code) {
            return 0;
        }
        int threshold = Math.min(nearest, code);
        float m = Nf4Codebook.midpoint(threshold);
        if (Math.abs(nearest - code) != 1 || Math.abs(v - m) > Math.ulp(m)) {
            fail("v=" + v + " is nearest to level " + nearest + ", not within an ulp of a threshold; " + where);
        }
        assertEquals(v > m ? threshold + 1 : threshold, code, "threshold rule at v=" + v + ", " + where);
        return 1;
    }

    /** Shows where the rules part: at the float32 thresholds that lie above their exact midpoint. */
    @Test
    void theThresholdRuleWinsWhereTheDistanceRuleDiffers() {
        List<Integer> differing = new ArrayList<>();
        for (int i = 0; i < 15; i++) {
            float m = Nf4Codebook.midpoint(i);
            double toLower = (double) m - Nf4Codebook.level(i);
            double toUpper = Nf4Codebook.level(i + 1) - (double) m;
            byte[] codes = new byte[1];
            float[] absmax = new float[1];
            Nf4.quantize(new float[] {m, 1f}, 2, codes, absmax);
            assertEquals(i, codes[0] & 0xF, "v exactly at threshold " + i);
            if (toUpper < toLower) {
                differing.add(i); // nearer to the upper level, yet the lower code is the rule
            }
        }
        System.out.println("thresholds where v = threshold is nearer the upper level: " + differing);
        assertEquals(List.of(0, 1, 3, 4, 12, 14), differing);
    }
}
