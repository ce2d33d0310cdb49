package dev.qnat.nf4.kernel;

/**
 * The constants and the per-block arithmetic of the MSE scale search (src/spec/nf4-codec.md, "MSE
 * scales") that the scalar and the vector kernels share, so that they agree bit for bit: which candidates
 * are tried, the fixed order in which each candidate's sums are reduced, the score, and the final scale.
 *
 * <p>Everything is in units of the block's absmax: {@code u = x * (1 / absmax)} lies in [-1, 1], so no sum
 * overflows at any scale. Candidate k encodes {@code u * STEPS[k]}, that is the block at scale
 * {@code absmax * (18 + k) / 20} (0.90, 0.95, 1.00, 1.05, 1.10); its codes' levels l give {@code Sul = sum u l}
 * and {@code Sll = sum l l}, the least-squares scale {@code Sul / Sll} for those codes and the error
 * reduction {@code Sul^2 / Sll} there (the score). The best candidate's least-squares scale is the block's.
 * Since 1.00 (the absmax codes) is a candidate, the result is never worse than absmax but for rounding.
 *
 * <p>Why five: each candidate is one threshold search per element, the kernel's whole cost. Measured on
 * N(0, 1) and Laplace blocks of 64 (numpy, four draws of 20 000 blocks, RMSE against absmax's): these
 * five reached 0.927 to 0.928 and 0.940; four (without 1.10) 0.928 to 0.929, too near the target of 0.93
 * for a test on random draws; six from 0.85 0.926 to 0.927; eight from 0.85 to 1.20 0.926; a grid of 1001
 * scales without the least-squares step 0.924. Candidates above 1.10 added nothing once refined.
 */
final class MseScaleRule {
    /** Candidates per block. */
    static final int CANDIDATES = 5;
    /** Elements of a block summed in the vector order: whole groups of this many from the block's start. */
    static final int GROUP = 16;
    /** Candidate k multiplies u by {@code (float) (20.0 / (18 + k))}; k = 2 is 1 (the absmax codes). */
    static final float[] STEPS = new float[CANDIDATES];

    static {
        for (int k = 0; k < CANDIDATES; k++) {
            STEPS[k] = (float) (20.0 / (18 + k));
        }
    }

    private MseScaleRule() {}

    /** Whether the block gets the search, or keeps its absmax: where absmax is 0, not finite, or 1 / absmax is infinite. */
    static boolean searches(float absmax) {
        return absmax > 0f && absmax <= Float.MAX_VALUE && 1f / absmax != Float.POSITIVE_INFINITY;
    }

    /**
     * A group sum of 16 partial sums p0..p15 in the fixed order: {@code h_j = p_j + p_(j+8)},
     * {@code q_j = h_j + h_(j+4)}, then {@code (q0 + q2) + (q1 + q3)}; here given as q0..q3.
     */
    static float tree(float q0, float q1, float q2, float q3) {
        return (q0 + q2) + (q1 + q3);
    }

    /** The score of a candidate: the reduction of the squared error (in absmax units) at its least-squares scale. */
    static float score(float sumUl, float sumLl) {
        return sumUl * sumUl / sumLl;
    }

    /**
     * The block's scale from its absmax and the winning candidate's sums: {@code absmax * (Sul / Sll)}, or
     * the absmax where that is not a usable scale (infinite, or its reciprocal infinite).
     */
    static float scale(float absmax, float sumUl, float sumLl) {
        float scale = absmax * (sumUl / sumLl);
        return scale > 0f && scale <= Float.MAX_VALUE && 1f / scale != Float.POSITIVE_INFINITY ? scale : absmax;
    }
}
