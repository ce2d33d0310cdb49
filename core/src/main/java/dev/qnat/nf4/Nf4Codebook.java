package dev.qnat.nf4;

import java.util.Arrays;

/**
 * The NF4 codebook of QLoRA as bitsandbytes defines it: sixteen float32 levels from -1 to 1, indexed by
 * the 4-bit code, and the fifteen float32 decision thresholds between neighbouring levels.
 */
public final class Nf4Codebook {
    /** Number of levels (codes 0 to 15). */
    public static final int LEVELS = 16;

    /**
     * The code whose level is exactly 0.0, which all-zero blocks use. (The spare high nibble of an odd
     * element count is 0, not this code, as the codec spec says.)
     */
    public static final int ZERO_CODE = 7;

    // Bit patterns rather than decimals so that nobody wonders about rounding.
    private static final float[] LEVEL_VALUES = {
        Float.intBitsToFloat(0xbf800000), Float.intBitsToFloat(0xbf3239b1),
        Float.intBitsToFloat(0xbf066b30), Float.intBitsToFloat(0xbeca32a0),
        Float.intBitsToFloat(0xbe91a24d), Float.intBitsToFloat(0xbe3d353f),
        Float.intBitsToFloat(0xbdba7871), Float.intBitsToFloat(0x00000000),
        Float.intBitsToFloat(0x3da2faff), Float.intBitsToFloat(0x3e24cae3),
        Float.intBitsToFloat(0x3e7c04dd), Float.intBitsToFloat(0x3ead033a),
        Float.intBitsToFloat(0x3ee1a4b8), Float.intBitsToFloat(0x3f1007ab),
        Float.intBitsToFloat(0x3f3913b3), Float.intBitsToFloat(0x3f800000),
    };

    // (c[i] + c[i+1]) / 2 in float32: one rounding of the sum, the halving is exact.
    private static final float[] MIDPOINTS = new float[LEVELS - 1];

    // encode's shortcut to the count of thresholds below v. cell(v) is a monotone function of v whose
    // cells are 1/16 wide, and the thresholds lie at least 0.08 apart, so a cell holds at most one. Every
    // threshold in a lower cell than v's is below v and every one in a higher cell above it, so the count
    // is the number below v's cell plus one compare with the threshold inside it (+inf where there is
    // none). Counting all fifteen took most of the scalar kernels' time, before C2 and after (JFR).
    private static final int CELLS_PER_UNIT = 16;
    private static final int LAST_CELL = 2 * CELLS_PER_UNIT;
    private static final byte[] THRESHOLDS_BELOW_CELL = new byte[LAST_CELL + 1];
    private static final float[] THRESHOLD_IN_CELL = new float[LAST_CELL + 1];

    static {
        for (int i = 0; i < MIDPOINTS.length; i++) {
            MIDPOINTS[i] = (LEVEL_VALUES[i] + LEVEL_VALUES[i + 1]) / 2f;
        }
        Arrays.fill(THRESHOLD_IN_CELL, Float.POSITIVE_INFINITY);
        for (float threshold : MIDPOINTS) {
            int cell = cell(threshold);
            if (THRESHOLD_IN_CELL[cell] != Float.POSITIVE_INFINITY) {
                throw new IllegalStateException("two NF4 thresholds in encode's cell " + cell);
            }
            THRESHOLD_IN_CELL[cell] = threshold;
            for (int above = cell + 1; above <= LAST_CELL; above++) {
                THRESHOLDS_BELOW_CELL[above]++;
            }
        }
    }

    /**
     * {@code (int) (v * 16 + 16)} clamped to 0..32, NaN in cell 0: each step is monotone (the product is exact, the
     * sum rounds once, the conversion truncates and saturates), so the whole is.
     */
    private static int cell(float v) {
        return Math.max(0, Math.min((int) (v * CELLS_PER_UNIT + CELLS_PER_UNIT), LAST_CELL));
    }

    private Nf4Codebook() {}

    /**
     * The level of a code, 0 to 15.
     *
     * @param code a 4-bit code, 0 to 15
     * @return its level, from -1 to 1
     * @throws ArrayIndexOutOfBoundsException {@code code} is outside 0 to 15
     */
    public static float level(int code) {
        return LEVEL_VALUES[code];
    }

    /**
     * The threshold between the levels of codes {@code i} and {@code i + 1}, for i from 0 to 14.
     *
     * @param i the lower of the two codes, 0 to 14
     * @return the mean of the two levels, rounded once to float32
     * @throws ArrayIndexOutOfBoundsException {@code i} is outside 0 to 14
     */
    public static float midpoint(int i) {
        return MIDPOINTS[i];
    }

    /**
     * A copy of the sixteen levels.
     *
     * @return a new array of the levels, indexed by code, ascending from -1 to 1
     */
    public static float[] levels() {
        return LEVEL_VALUES.clone();
    }

    /**
     * A copy of the fifteen thresholds.
     *
     * @return a new array of the thresholds, ascending; entry i lies between the levels of codes i and i + 1
     */
    public static float[] midpoints() {
        return MIDPOINTS.clone();
    }

    /**
     * The code of a normalised value {@code v = x * (1 / absmax)}: the number of thresholds strictly below
     * {@code v}. An exact threshold goes to the lower code; NaN gets code 0, as in bitsandbytes.
     *
     * @param v an element times the reciprocal of its block's absmax, so normally from -1 to 1
     * @return its code, 0 to 15
     */
    public static int encode(float v) {
        int cell = cell(v);
        return THRESHOLDS_BELOW_CELL[cell] + (v > THRESHOLD_IN_CELL[cell] ? 1 : 0);
    }
}
