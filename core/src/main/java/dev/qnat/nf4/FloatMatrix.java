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
     *
     * @param elements the weights, {@code W[r][c]} at element {@code r * cols + c}; at least
     *        {@code rows * cols * type.byteSize()} bytes
     * @param type the element type: F32, F16 or BF16
     * @param rows the number of rows, at least 1
     * @param cols the number of columns, at least 1
     * @return a matrix that reads {@code elements} in place
     * @throws IllegalArgumentException if {@code rows} or {@code cols} is below 1 or {@code elements} is too small
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

    /**
     * The matrix of {@code weights}, {@code rows * cols} floats row by row, used in place.
     *
     * @param weights the weights, {@code W[r][c]} at {@code r * cols + c}; at least {@code rows * cols} floats
     * @param rows the number of rows, at least 1
     * @param cols the number of columns, at least 1
     * @return an F32 matrix that reads {@code weights} in place: later changes to the array show in its products
     * @throws IllegalArgumentException if {@code rows} or {@code cols} is below 1 or {@code weights} is too short
     */
    public static FloatMatrix of(float[] weights, int rows, int cols) {
        return of(MemorySegment.ofArray(Objects.requireNonNull(weights, "weights")), FloatType.F32, rows, cols);
    }

    /**
     * The type the elements are stored in.
     *
     * @return F32, F16 or BF16
     */
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
