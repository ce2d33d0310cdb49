package dev.qnat.nf4.kernel;

import dev.qnat.nf4.FloatType;
import java.lang.foreign.MemorySegment;

/**
 * Matrix-vector and matrix-matrix kernels on NF4 and RAW float weights, row-major {@code [rows][cols]}
 * (PyTorch's Linear layout). Internal: {@code dev.qnat.nf4.Nf4Matrix} and {@code FloatMatrix} check
 * arguments, stage mapped memory and split rows; kernels trust them.
 *
 * <p>A kernel computes, for the {@code rowCount} rows of a tile and each of {@code batch} rows of x,
 * {@code y[yOffset + b * yStride + i] = sum over c of W[i][c] * x[b][c]}, where W's element is the
 * dequantized weight {@code level[code] * absmax[block]} (one float32 multiply, exactly what
 * {@code Nf4.dequantize} writes) or the RAW element widened to float. The sum runs in an order that
 * depends only on the implementation, {@code cols} and the block size (src/spec/nf4-linear.md), never on
 * the batch, the tile or the thread, so every caller gets the same bits for the same output.
 */
public interface MatVecKernels {

    /**
     * x in the layout {@link #nf4} reads: a copy permuted per chunk of columns, or {@code x} itself.
     * {@code x} holds {@code batch} rows of {@code cols} floats.
     */
    float[] prepareNf4(float[] x, int batch, int cols, int blockSize);

    /**
     * NF4 rows: tile row {@code i} is elements {@code [e0 + i * cols, e0 + (i + 1) * cols)} of the flattened
     * tensor, {@code e0 = firstElement}. Byte 0 of {@code codes} holds elements {@code e0 & ~1} and the one
     * after it (low nibble first). {@code absmax[k]} is the absmax of block {@code firstBlock + k}.
     * {@code x} comes from {@link #prepareNf4}.
     */
    void nf4(MemorySegment codes, long firstElement, float[] absmax, long firstBlock, int blockSize, int cols,
             int rowCount, float[] x, int batch, float[] y, int yOffset, int yStride);

    /**
     * RAW rows: {@code w} holds {@code rowCount * cols} little-endian elements of {@code type} from its
     * byte 0; x is in natural order.
     */
    void raw(MemorySegment w, FloatType type, int cols, int rowCount, float[] x, int batch, float[] y, int yOffset,
             int yStride);

    /** A short name for logs and benchmarks, e.g. {@code scalar} or {@code panama-256}. */
    String name();
}
