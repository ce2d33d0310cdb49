package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * The tests' references for matrix products: float64 sums of the dequantized weights with the float32
 * bound, and the float32 sums in the order src/spec/nf4-linear.md writes down.
 */
public final class MatrixReference {
    private MatrixReference() {}

    /** How a vector kernel walks a row's columns (src/spec/nf4-linear.md). */
    public enum Order {
        /**
         * NF4 with cols and block size multiples of 8: chunks of K = EL columns, E codes per lane (4 at 16
         * lanes, else 8), vector Eq + k holding column qK + Ej + k in lane j.
         */
        CHUNKED,
        /** RAW F32, F16 and BF16: vector v holds columns vL .. vL + L - 1. */
        NATURAL,
        /** Other NF4 shapes, and the scalar reference: one fma after another. */
        SCALAR
    }

    /**
     * {@code y[b][r]} summed as the spec orders it at {@code lanes} float lanes: four partial sums of L
     * lanes, vector v into sum v mod 4 by fma, then {@code (p0 + p2) + (p1 + p3)}, the lanes as a halving
     * tree, and the columns past the whole vectors one fma at a time. w holds the dequantized weights
     * (level times absmax, as the kernels form them).
     */
    public static float[] inSpecOrder(float[] w, int rows, int cols, float[] x, int batch, int lanes, Order order) {
        float[] y = new float[batch * rows];
        int codesPerLane = lanes == 16 ? 4 : 8;
        int perStep = order == Order.CHUNKED ? codesPerLane * lanes : 4 * lanes;
        int full = order == Order.SCALAR ? 0 : cols - cols % perStep;
        for (int b = 0; b < batch; b++) {
            for (int r = 0; r < rows; r++) {
                float[][] partial = new float[4][lanes];
                for (int v = 0; v < full / lanes; v++) {
                    for (int j = 0; j < lanes; j++) {
                        int c = order == Order.CHUNKED
                                ? v / codesPerLane * perStep + codesPerLane * j + v % codesPerLane
                                : v * lanes + j;
                        partial[v % 4][j] = Math.fma(w[r * cols + c], x[b * cols + c], partial[v % 4][j]);
                    }
                }
                float[] t = new float[Math.max(1, lanes)];
                for (int j = 0; j < lanes; j++) {
                    t[j] = (partial[0][j] + partial[2][j]) + (partial[1][j] + partial[3][j]);
                }
                for (int h = lanes / 2; h > 0; h /= 2) {
                    for (int i = 0; i < h; i++) {
                        t[i] += t[i + h];
                    }
                }
                float sum = t[0];
                for (int c = full; c < cols; c++) {
                    sum = Math.fma(w[r * cols + c], x[b * cols + c], sum);
                }
                y[b * rows + r] = sum;
            }
        }
        return y;
    }

    /**
     * Fails unless each {@code y[b][r]} is within {@code (cols + 2) * 2^-24 * sum |w x|} of the exact
     * {@code sum w[r][c] * x[b][c]} (computed in float64, exact enough here).
     */
    public static void assertWithinBound(String what, float[] w, int rows, int cols, float[] x, int batch, float[] y) {
        for (int b = 0; b < batch; b++) {
            for (int r = 0; r < rows; r++) {
                double exact = 0;
                double magnitude = 0;
                for (int c = 0; c < cols; c++) {
                    double term = (double) w[r * cols + c] * x[b * cols + c];
                    exact += term;
                    magnitude += Math.abs(term);
                }
                double bound = (cols + 2) * 0x1p-24 * magnitude;
                float got = y[b * rows + r];
                if (!(Math.abs(got - exact) <= bound)) {
                    fail(what + " batch " + batch + ": y[" + b + "][" + r + "] = " + got + ", reference " + exact
                            + ", bound " + bound);
                }
            }
        }
    }
}
