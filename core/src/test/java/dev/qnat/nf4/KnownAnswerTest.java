package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import org.junit.jupiter.api.Test;

/** Small vectors whose packed bytes were worked out by hand from the codebook and thresholds. */
class KnownAnswerTest {

    private static void check(float[] x, int blockSize, int[] expectedCodes, float[] expectedAbsmax) {
        byte[] codes = new byte[(int) Nf4.packedSize(x.length)];
        float[] absmax = new float[(int) Nf4.blockCount(x.length, blockSize)];
        Nf4.quantize(x, blockSize, codes, absmax);
        byte[] expected = new byte[expectedCodes.length];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = (byte) expectedCodes[i];
        }
        assertArrayEquals(expected, codes);
        assertArrayEquals(expectedAbsmax, absmax);
    }

    @Test
    void extremesGoToCodes15And0() {
        // 1 -> 15 in the low nibble, -1 -> 0 in the high one.
        check(new float[] {1f, -1f}, 2, new int[] {0x0F}, new float[] {1f});
    }

    @Test
    void zeroBlocksStoreCode7AndAbsmaxZero() {
        // Blocks [0, -0] and [0]: code 7 twice, then 7 with an empty high nibble.
        check(new float[] {0f, -0f, 0f}, 2, new int[] {0x77, 0x07}, new float[] {0f, 0f});
    }

    @Test
    void interiorValues() {
        // absmax 1: 0.5 lies below threshold 12 (0.5017) -> 12; -0.25 between thresholds 3 (-0.3397) and
        // 4 (-0.2346) -> 4; 1.0 -> 15; 0.0 -> 7.
        check(new float[] {0.5f, -0.25f, 1f, 0f}, 4, new int[] {0x4C, 0x7F}, new float[] {1f});
    }

    @Test
    void oddLengthLeavesTheLastHighNibbleZero() {
        // absmax 2: v = 1 -> 15; v = -0.5 between thresholds 1 (-0.6106) and 2 (-0.4600) -> 2;
        // v = 0.25 between thresholds 9 (0.2035) and 10 (0.2920) -> 10.
        check(new float[] {2f, -1f, 0.5f}, 4, new int[] {0x2F, 0x0A}, new float[] {2f});
    }

    @Test
    void exactThresholdGoesToTheLowerCode() {
        // absmax 1 so v = x: threshold 12 itself -> 12, one ulp above -> 13.
        float m = Nf4Codebook.midpoint(12);
        check(new float[] {1f, m, Math.nextUp(m), -1f}, 4, new int[] {0xCF, 0x0D}, new float[] {1f});
    }

    @Test
    void blocksAreIndependent() {
        // Block 0 [4, -4]: 15, 0. Block 1 [0.001, 0]: absmax 0.001 -> 15, 7.
        check(new float[] {4f, -4f, 0.001f, 0f}, 2, new int[] {0x0F, 0x7F}, new float[] {4f, 0.001f});
    }
}
