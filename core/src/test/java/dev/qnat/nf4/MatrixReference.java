package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.fail;

/** The tests' reference for matrix products: float64 sums of the dequantized weights, and the float32 bound. */
public final class MatrixReference {
    private MatrixReference() {}

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
