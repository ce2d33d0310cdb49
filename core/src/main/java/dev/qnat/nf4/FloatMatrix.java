package dev.qnat.nf4;

import dev.qnat.nf4.kernel.MatVecKernelProvider;
import dev.qnat.nf4.kernel.MatVecKernels;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * A weight matrix kept as F32, F16 or BF16 elements (a RAW tensor): the baseline for {@link Nf4Matrix},
 * with the same calls. Each output is a float32 sum of exact products of the widened elements.
 */
public final class FloatMatrix extends WeightMatrix {
    private final MemorySegment elements;
    private final FloatType type;

    private FloatMatrix(MemorySegment elements, FloatType type, int rows, int cols) {
        super(rows, cols);
        this.elements = elements;
        this.type = type;
    }

    /**
     * The matrix whose {@code rows * cols} little-endian elements of {@code type} are {@code elements}, row
     * by row; the segment is used in place and may be larger.
     */
    public static FloatMatrix of(MemorySegment elements, FloatType type, int rows, int cols) {
        Objects.requireNonNull(elements, "elements");
        Objects.requireNonNull(type, "type");
        FloatMatrix matrix = new FloatMatrix(elements, type, rows, cols);
        long needed = (long) rows * cols * type.byteSize();
        if (elements.byteSize() < needed) {
            throw new IllegalArgumentException("elements hold " + elements.byteSize() + " bytes, a " + rows + " x " + cols
                    + " " + type + " matrix needs " + needed);
        }
        return matrix;
    }

    /** The matrix of {@code weights}, {@code rows * cols} floats row by row, used in place. */
    public static FloatMatrix of(float[] weights, int rows, int cols) {
        return of(MemorySegment.ofArray(Objects.requireNonNull(weights, "weights")), FloatType.F32, rows, cols);
    }

    public FloatType type() {
        return type;
    }

    @Override
    float[] prepare(float[] x, int batch) {
        return x;
    }

    @Override
    void multiplyRows(int firstRow, int endRow, float[] x, int batch, float[] y) {
        int n = endRow - firstRow;
        long bytes = (long) n * cols * type.byteSize();
        MemorySegment tile = Staging.of(elements, (long) firstRow * cols * type.byteSize(), bytes);
        MatVecKernels kernels = MatVecKernelProvider.kernels();
        kernels.raw(tile, type, cols, n, x, batch, y, firstRow, rows);
    }

    @Override
    MemorySegment[] segments() {
        return new MemorySegment[] {elements};
    }

    @Override
    public String toString() {
        return "FloatMatrix " + rows + " x " + cols + " " + type;
    }
}
