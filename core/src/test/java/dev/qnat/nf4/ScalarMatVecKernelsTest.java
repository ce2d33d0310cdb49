package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.qnat.nf4.kernel.MatVecKernelProvider;
import dev.qnat.nf4.kernel.MatVecKernels;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The scalar reference reads like its definition: one fma after another over the columns, from 0. */
class ScalarMatVecKernelsTest {
    @Test
    void eachOutputIsTheSequentialFmaSum() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        MatVecKernels scalar = MatVecKernelProvider.scalar();
        for (int trial = 0; trial < 40; trial++) {
            int rows = 1 + random.nextInt(9);
            int cols = 1 + random.nextInt(300);
            int blockSize = 2 * (1 + random.nextInt(40));
            float[] weights = new float[rows * cols];
            for (int i = 0; i < weights.length; i++) {
                weights[i] = (float) random.nextGaussian();
            }
            byte[] codes = new byte[(int) Nf4.packedSize(weights.length)];
            float[] absmax = new float[(int) Nf4.blockCount(weights.length, blockSize)];
            Nf4.quantize(weights, blockSize, codes, absmax);
            float[] w = new float[weights.length];
            Nf4.dequantize(codes, absmax, blockSize, w);
            int batch = 1 + random.nextInt(3);
            float[] x = new float[batch * cols];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) random.nextGaussian();
            }
            // Rows 1.. of the matrix as a tile: it starts at element cols, mid-byte when cols is odd.
            int tileRows = rows - 1;
            float[] y = new float[batch * rows];
            long first = cols;
            long firstBlock = first / blockSize;
            float[] tileAbsmax = java.util.Arrays.copyOfRange(absmax, (int) firstBlock, absmax.length);
            scalar.nf4(MemorySegment.ofArray(codes).asSlice(first / 2), first, tileAbsmax, firstBlock, blockSize, cols, tileRows, x, batch, y, 1, rows);
            for (int b = 0; b < batch; b++) {
                for (int r = 1; r < rows; r++) {
                    float s = 0f;
                    for (int c = 0; c < cols; c++) {
                        s = Math.fma(w[r * cols + c], x[b * cols + c], s);
                    }
                    assertEquals(s, y[b * rows + r], "seed " + seed + ", trial " + trial);
                }
            }
        }
    }
}
