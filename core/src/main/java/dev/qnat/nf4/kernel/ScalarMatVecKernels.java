package dev.qnat.nf4.kernel;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4Codebook;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The reference: every output is one float32 sum over the columns in order,
 * {@code s = fma(w[c], x[c], s)} from {@code s = 0} and {@code c = 0}, with {@code w[c]} the dequantized
 * weight. It reads like the definition and is as slow as that sounds.
 */
public final class ScalarMatVecKernels implements MatVecKernels {
    public static final ScalarMatVecKernels INSTANCE = new ScalarMatVecKernels();

    private ScalarMatVecKernels() {}

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public float[] prepareNf4(float[] x, int batch, int cols, int blockSize) {
        return x;
    }

    /** The dequantized weight of flattened element {@code e}: {@code level[code] * absmax[block]}. */
    static float weight(MemorySegment codes, long codeBase, long e, float[] absmax, long firstBlock, int blockSize) {
        int packed = codes.get(ValueLayout.JAVA_BYTE, (e - codeBase) >> 1);
        int code = (packed >> (4 * (int) (e & 1))) & 0xF;
        return Nf4Codebook.level(code) * absmax[(int) (e / blockSize - firstBlock)];
    }

    @Override
    public void nf4(MemorySegment codes, long firstElement, float[] absmax, long firstBlock, int blockSize, int cols,
                    int rowCount, float[] x, int batch, float[] y, int yOffset, int yStride) {
        long codeBase = firstElement & ~1L;
        for (int i = 0; i < rowCount; i++) {
            long rowStart = firstElement + (long) i * cols;
            for (int b = 0; b < batch; b++) {
                int xRow = b * cols;
                float s = 0f;
                for (int c = 0; c < cols; c++) {
                    s = Math.fma(weight(codes, codeBase, rowStart + c, absmax, firstBlock, blockSize), x[xRow + c], s);
                }
                y[yOffset + b * yStride + i] = s;
            }
        }
    }

    @Override
    public void raw(MemorySegment w, FloatType type, int cols, int rowCount, float[] x, int batch, float[] y,
                    int yOffset, int yStride) {
        for (int i = 0; i < rowCount; i++) {
            long rowStart = (long) i * cols;
            for (int b = 0; b < batch; b++) {
                int xRow = b * cols;
                float s = 0f;
                for (int c = 0; c < cols; c++) {
                    s = Math.fma(type.read(w, rowStart + c), x[xRow + c], s);
                }
                y[yOffset + b * yStride + i] = s;
            }
        }
    }
}
