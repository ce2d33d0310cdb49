package dev.qnat.nf4;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executor;

/**
 * A weight matrix W of {@code rows x cols}, row-major (PyTorch's Linear layout {@code [out_features,
 * in_features]}), that multiplies float32 vectors without being expanded to floats:
 * {@link #matVec} computes {@code y[r] = sum over c of W[r][c] * x[c]}, {@link #matMul}
 * {@code y = x W^T} for {@code batch} rows of x at once ({@code x} is {@code [batch][cols]}, {@code y}
 * {@code [batch][rows]}, both row-major).
 *
 * <p>{@link MemorySegment} arguments hold little-endian float32 at any alignment. Every argument is
 * checked before the first element of {@code y} is written: a bad call throws and leaves {@code y} as
 * it was. The variants taking an {@link Executor} split the rows into ranges run on it, with the same
 * bits as the one-thread call (each output is summed in an order fixed by the kernels, cols and the
 * block size alone: src/spec/nf4-linear.md). Usable from many threads at once.
 */
public abstract sealed class WeightMatrix permits Nf4Matrix, FloatMatrix {
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Weights per row range: its codes (or elements) and scales stay in cache while x streams by. */
    private static final long TILE_ELEMENTS = 1 << 17;

    // Never started: it only asks segments whether a thread other than the caller may touch them.
    private static final Thread SOME_OTHER_THREAD = Thread.ofVirtual().unstarted(() -> { });

    final int rows;
    final int cols;

    WeightMatrix(int rows, int cols) {
        if (rows < 1 || cols < 1) {
            throw new IllegalArgumentException("a matrix needs at least one row and one column, got " + rows + " x " + cols);
        }
        this.rows = rows;
        this.cols = cols;
    }

    /**
     * Rows: outputs per row of x.
     *
     * @return the number of rows of W, at least 1
     */
    public int rows() {
        return rows;
    }

    /**
     * Columns: inputs per row of x.
     *
     * @return the number of columns of W, at least 1
     */
    public int cols() {
        return cols;
    }

    /**
     * {@code y[r] = sum over c of W[r][c] * x[c]}; x holds cols floats, y rows.
     *
     * @param x the input vector, exactly {@link #cols()} floats
     * @param y where the output goes, exactly {@link #rows()} floats; not {@code x}
     * @throws IllegalArgumentException if a length is wrong or {@code x} and {@code y} are the same array
     */
    public void matVec(float[] x, float[] y) {
        matMul(x, 1, y, null);
    }

    /**
     * As {@link #matVec(float[], float[])}, with row ranges run on {@code executor}.
     *
     * @param x the input vector, exactly {@link #cols()} floats
     * @param y where the output goes, exactly {@link #rows()} floats; not {@code x}
     * @param executor runs the row ranges, not null; this call waits for them all
     * @throws IllegalArgumentException if a length is wrong or {@code x} and {@code y} are the same array
     */
    public void matVec(float[] x, float[] y, Executor executor) {
        matMul(x, 1, y, Objects.requireNonNull(executor, "executor"));
    }

    /**
     * As {@link #matVec(float[], float[])} on little-endian float32 segments.
     *
     * @param x the input vector, exactly {@link #cols()} floats ({@code 4 * cols} bytes)
     * @param y where the output goes, exactly {@link #rows()} floats ({@code 4 * rows} bytes), writable
     * @throws IllegalArgumentException if a size is wrong or {@code y} is read-only
     */
    public void matVec(MemorySegment x, MemorySegment y) {
        matMul(x, 1, y, null);
    }

    /**
     * As {@link #matVec(MemorySegment, MemorySegment)}, with row ranges run on {@code executor}.
     *
     * @param x the input vector, exactly {@link #cols()} floats ({@code 4 * cols} bytes)
     * @param y where the output goes, exactly {@link #rows()} floats ({@code 4 * rows} bytes), writable
     * @param executor runs the row ranges, not null; this call waits for them all
     * @throws IllegalArgumentException if a size is wrong or {@code y} is read-only
     */
    public void matVec(MemorySegment x, MemorySegment y, Executor executor) {
        matMul(x, 1, y, Objects.requireNonNull(executor, "executor"));
    }

    /**
     * {@code y = x W^T}: x holds {@code batch} rows of cols floats, y {@code batch} rows of rows floats.
     *
     * @param x the inputs, {@code [batch][cols]} row-major: exactly {@code batch * cols} floats
     * @param batch the number of rows of x and of y, at least 1
     * @param y where the outputs go, {@code [batch][rows]} row-major: exactly {@code batch * rows} floats;
     *        not {@code x}
     * @throws IllegalArgumentException if {@code batch < 1}, a length is wrong (or too large for one array), or
     *         {@code x} and {@code y} are the same array
     */
    public void matMul(float[] x, int batch, float[] y) {
        matMul(x, batch, y, null);
    }

    /**
     * As {@link #matMul(float[], int, float[])} with row ranges run on {@code executor} (null: this thread).
     *
     * @param x the inputs, {@code [batch][cols]} row-major: exactly {@code batch * cols} floats
     * @param batch the number of rows of x and of y, at least 1
     * @param y where the outputs go, {@code [batch][rows]} row-major: exactly {@code batch * rows} floats;
     *        not {@code x}
     * @param executor runs the row ranges, this call waiting for them all; null runs them on this thread
     * @throws IllegalArgumentException if {@code batch < 1}, a length is wrong (or too large for one array), or
     *         {@code x} and {@code y} are the same array
     */
    public void matMul(float[] x, int batch, float[] y, Executor executor) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        checkBatch(batch);
        checkLength("x", x.length, batch, cols);
        checkLength("y", y.length, batch, rows);
        if (x == y) {
            throw new IllegalArgumentException("x and y are the same array");
        }
        run(x, batch, y, executor, true);
    }

    /**
     * As {@link #matMul(float[], int, float[])} on little-endian float32 segments.
     *
     * @param x the inputs, {@code [batch][cols]} row-major: exactly {@code batch * cols} floats
     * @param batch the number of rows of x and of y, at least 1
     * @param y where the outputs go, {@code [batch][rows]} row-major: exactly {@code batch * rows} floats, writable
     * @throws IllegalArgumentException if {@code batch < 1}, a size is wrong or not whole floats, or {@code y} is
     *         read-only
     */
    public void matMul(MemorySegment x, int batch, MemorySegment y) {
        matMul(x, batch, y, null);
    }

    /**
     * As {@link #matMul(MemorySegment, int, MemorySegment)} with row ranges run on {@code executor} (null: this thread).
     *
     * @param x the inputs, {@code [batch][cols]} row-major: exactly {@code batch * cols} floats
     * @param batch the number of rows of x and of y, at least 1
     * @param y where the outputs go, {@code [batch][rows]} row-major: exactly {@code batch * rows} floats, writable
     * @param executor runs the row ranges, this call waiting for them all; null runs them on this thread
     * @throws IllegalArgumentException if {@code batch < 1}, a size is wrong or not whole floats, or {@code y} is
     *         read-only
     */
    public void matMul(MemorySegment x, int batch, MemorySegment y, Executor executor) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        checkBatch(batch);
        checkLength("x", x.byteSize() / 4, batch, cols);
        checkLength("y", y.byteSize() / 4, batch, rows);
        if (x.byteSize() % 4 != 0 || y.byteSize() % 4 != 0) {
            throw new IllegalArgumentException("x and y must hold whole floats, x holds " + x.byteSize() + " bytes, y "
                    + y.byteSize());
        }
        if (y.isReadOnly()) {
            throw new IllegalArgumentException("y is a read-only segment");
        }
        float[] xs = new float[batch * cols];
        MemorySegment.copy(x, FLOAT, 0, xs, 0, xs.length);
        float[] ys = new float[batch * rows];
        run(xs, batch, ys, executor, false);
        MemorySegment.copy(ys, 0, y, FLOAT, 0, ys.length);
    }

    private static void checkBatch(int batch) {
        if (batch < 1) {
            throw new IllegalArgumentException("batch must be at least 1, got " + batch);
        }
    }

    private static void checkLength(String what, long length, int batch, int perRow) {
        long needed = (long) batch * perRow;
        if (needed > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(what + " of " + batch + " rows of " + perRow + " floats is too large for one array");
        }
        if (length != needed) {
            throw new IllegalArgumentException(what + " holds " + length + " floats, not " + batch + " x " + perRow
                    + " = " + needed);
        }
    }

    private void run(float[] x, int batch, float[] y, Executor executor, boolean yIsCallers) {
        float[] prepared = prepare(x, batch);
        int tileRows = (int) Math.max(1, Math.min(rows, TILE_ELEMENTS / cols));
        if (tileRows >= 4) {
            tileRows -= tileRows % 4;
        }
        if (executor == null || tileRows >= rows || !shareable()) {
            for (int r = 0; r < rows; r += tileRows) {
                multiplyRows(r, Math.min(rows, r + tileRows), prepared, batch, y);
            }
            return;
        }
        List<CompletableFuture<Void>> tasks = new ArrayList<>();
        for (int r = 0; r < rows; r += tileRows) {
            int first = r;
            int end = Math.min(rows, r + tileRows);
            tasks.add(CompletableFuture.runAsync(() -> multiplyRows(first, end, prepared, batch, y), executor));
        }
        try {
            CompletableFuture.allOf(tasks.toArray(CompletableFuture[]::new)).join();
        } catch (CompletionException e) {
            if (e.getCause() instanceof RuntimeException runtime) {
                throw runtime;
            }
            if (e.getCause() instanceof Error error) {
                throw error;
            }
            throw e;
        }
    }

    private boolean shareable() {
        return Arrays.stream(segments()).allMatch(s -> s.isAccessibleBy(SOME_OTHER_THREAD));
    }

    /** x in the layout the kernels read. */
    abstract float[] prepare(float[] x, int batch);

    /** Outputs of rows {@code [firstRow, endRow)} for every row of x, into {@code y[b * rows + r]}. */
    abstract void multiplyRows(int firstRow, int endRow, float[] x, int batch, float[] y);

    /** The segments the kernels read, to know whether other threads may read them. */
    abstract MemorySegment[] segments();
}
