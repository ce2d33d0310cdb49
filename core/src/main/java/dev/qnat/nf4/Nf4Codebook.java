package dev.qnat.nf4;

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

    static {
        for (int i = 0; i < MIDPOINTS.length; i++) {
            MIDPOINTS[i] = (LEVEL_VALUES[i] + LEVEL_VALUES[i + 1]) / 2f;
        }
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
        int code = 0;
        for (float threshold : MIDPOINTS) {
            if (v > threshold) {
                code++;
            }
        }
        return code;
    }
}
