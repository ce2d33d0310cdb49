package dev.qnat.nf4.kernel;

import static jdk.incubator.vector.VectorOperators.GE;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.S2I;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4Codebook;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Matrix kernels on the Panama Vector API, at the codec kernels' width (128, 256 or 512 bits; LANES floats).
 *
 * <p>NF4 rows are read in chunks of {@code 8 * LANES} columns: one vector of code bytes seen as LANES int
 * lanes, lane j holding the codes of the chunk's columns 8j..8j+7, column 8j+k at bits 4k..4k+3 (QNAT's
 * low-nibble-first order). Shifting by 4k and masking gives the codes of columns 8j+k in lane j, so x is
 * permuted once per call into that order ({@link #prepareNf4}) and everything after is lane-wise: shift,
 * mask, a 16-entry lookup of the levels already multiplied by the block's absmax (once per block, when the
 * chunk lies in one block), and an FMA. Chunks need rows and blocks that start on a multiple of 8
 * columns ({@code cols} and the block size multiples of 8); other shapes run the scalar reference. For a
 * batch, four rows are decoded once into a small float buffer and multiplied with three rows of x at a
 * time in registers. Summation orders: src/spec/nf4-linear.md.
 */
final class PanamaMatVecKernels implements MatVecKernels {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    private static final int BITS = widthOf(Nf4KernelProvider.kernels().name());
    private static final VectorSpecies<Float> FLOATS = VectorSpecies.of(float.class, VectorShape.forBitSize(BITS));
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, VectorShape.forBitSize(BITS));
    /** Half-width shorts: as many lanes as {@link #FLOATS}, for BF16 loads. */
    private static final VectorSpecies<Short> HALF_SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(BITS / 2));
    private static final int LANES = FLOATS.length();
    /** Columns per NF4 chunk: one vector of code bytes, 8 codes per int lane. */
    static final int CHUNK = 8 * LANES;
    /** Vectors that hold the 16 levels. */
    private static final int PARTS = Math.max(1, Nf4Codebook.LEVELS / LANES);
    private static final float[] LEVELS = new float[PARTS * LANES];
    /** Rows of W decoded together, and rows of x multiplied with them in registers, for a batch. */
    private static final int TILE_ROWS = 4;
    private static final int TILE_BATCH = 3;

    static {
        for (int code = 0; code < Nf4Codebook.LEVELS; code++) {
            LEVELS[code] = Nf4Codebook.level(code);
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static final PanamaMatVecKernels INSTANCE = new PanamaMatVecKernels();

    private PanamaMatVecKernels() {}

    /** Per-thread buffers: lane sums, per-lane scales, decoded rows. */
    private static final class Scratch {
        final float[] lanes = new float[LANES];
        final float[] laneScales = new float[LANES];
        private float[] rows = new float[0];

        float[] rows(int n) {
            if (rows.length < n) {
                rows = new float[n];
            }
            return rows;
        }
    }

    static int widthOf(String codecKernels) {
        if (!codecKernels.startsWith("panama-")) {
            throw new IllegalStateException("the codec runs on the " + codecKernels + " kernels");
        }
        return Integer.parseInt(codecKernels.substring("panama-".length()));
    }

    @Override
    public String name() {
        return "panama-" + BITS;
    }

    /** Whether NF4 rows of this shape go in chunks: rows and blocks start at multiples of 8 columns. */
    static boolean chunked(int cols, int blockSize) {
        return cols % 8 == 0 && blockSize % 8 == 0;
    }

    @Override
    public float[] prepareNf4(float[] x, int batch, int cols, int blockSize) {
        if (!chunked(cols, blockSize)) {
            return x;
        }
        int full = cols - cols % CHUNK;
        float[] permuted = new float[batch * cols];
        for (int b = 0; b < batch; b++) {
            int row = b * cols;
            for (int q = row; q < row + full; q += CHUNK) {
                for (int j = 0; j < LANES; j++) {
                    for (int k = 0; k < 8; k++) {
                        permuted[q + k * LANES + j] = x[q + 8 * j + k];
                    }
                }
            }
            System.arraycopy(x, row + full, permuted, row + full, cols - full);
        }
        return permuted;
    }

    // ---- NF4 --------------------------------------------------------------------------------------

    @Override
    public void nf4(MemorySegment codes, long firstElement, float[] absmax, long firstBlock, int blockSize, int cols,
                    int rowCount, float[] x, int batch, float[] y, int yOffset, int yStride) {
        if (!chunked(cols, blockSize)) {
            ScalarMatVecKernels.INSTANCE.nf4(codes, firstElement, absmax, firstBlock, blockSize, cols, rowCount, x,
                    batch, y, yOffset, yStride);
            return;
        }
        Nf4Rows rows = new Nf4Rows(codes, firstElement & ~1L, absmax, firstBlock, blockSize, cols);
        Scratch scratch = SCRATCH.get();
        if (batch == 1) {
            for (int i = 0; i < rowCount; i++) {
                y[yOffset + i] = rows.dot(firstElement + (long) i * cols, x, scratch);
            }
            return;
        }
        float[] decoded = scratch.rows(TILE_ROWS * cols);
        for (int i0 = 0; i0 < rowCount; i0 += TILE_ROWS) {
            int n = Math.min(TILE_ROWS, rowCount - i0);
            for (int r = 0; r < n; r++) {
                rows.decode(firstElement + (long) (i0 + r) * cols, decoded, r * cols, scratch);
            }
            products(decoded, n, cols, rows.full, x, batch, y, yOffset + i0, yStride, scratch);
        }
    }

    /** NF4 rows of one tile, and the two ways through a row: into an FMA with x, or into floats. */
    private record Nf4Rows(MemorySegment codes, long codeBase, float[] absmax, long firstBlock, int blockSize,
                           int cols, int full) {
        Nf4Rows(MemorySegment codes, long codeBase, float[] absmax, long firstBlock, int blockSize, int cols) {
            this(codes, codeBase, absmax, firstBlock, blockSize, cols, cols - cols % CHUNK);
        }

        /** The dot product of the row starting at element {@code rowStart} with permuted x (batch 1). */
        float dot(long rowStart, float[] x, Scratch scratch) {
            FloatVector[] levels = levelTables(1f);
            FloatVector[] table = levels;
            long tableBlock = -1;
            FloatVector acc = FloatVector.zero(FLOATS);
            for (int q = 0; q < full; q += CHUNK) {
                long e = rowStart + q;
                IntVector packed = IntVector.fromMemorySegment(INTS, codes, (e - codeBase) >> 1, LE);
                long block = e / blockSize;
                if (block == (e + CHUNK - 1) / blockSize) {
                    if (block != tableBlock) {
                        table = levelTables(absmax[(int) (block - firstBlock)]);
                        tableBlock = block;
                    }
                    for (int k = 0; k < 8; k++) {
                        acc = lookup(nibbles(packed, k), table).fma(FloatVector.fromArray(FLOATS, x, q + k * LANES), acc);
                    }
                } else {
                    FloatVector scale = laneScales(e, scratch);
                    for (int k = 0; k < 8; k++) {
                        acc = lookup(nibbles(packed, k), levels).mul(scale)
                                .fma(FloatVector.fromArray(FLOATS, x, q + k * LANES), acc);
                    }
                }
            }
            float sum = reduce(acc, scratch);
            for (int c = full; c < cols; c++) {
                sum = Math.fma(ScalarMatVecKernels.weight(codes, codeBase, rowStart + c, absmax, firstBlock, blockSize),
                        x[c], sum);
            }
            return sum;
        }

        /** The dequantized row in the permuted order (the tail in natural order) at {@code out[offset]}. */
        void decode(long rowStart, float[] out, int offset, Scratch scratch) {
            FloatVector[] levels = levelTables(1f);
            FloatVector[] table = levels;
            long tableBlock = -1;
            for (int q = 0; q < full; q += CHUNK) {
                long e = rowStart + q;
                IntVector packed = IntVector.fromMemorySegment(INTS, codes, (e - codeBase) >> 1, LE);
                long block = e / blockSize;
                if (block == (e + CHUNK - 1) / blockSize) {
                    if (block != tableBlock) {
                        table = levelTables(absmax[(int) (block - firstBlock)]);
                        tableBlock = block;
                    }
                    for (int k = 0; k < 8; k++) {
                        lookup(nibbles(packed, k), table).intoArray(out, offset + q + k * LANES);
                    }
                } else {
                    FloatVector scale = laneScales(e, scratch);
                    for (int k = 0; k < 8; k++) {
                        lookup(nibbles(packed, k), levels).mul(scale).intoArray(out, offset + q + k * LANES);
                    }
                }
            }
            for (int c = full; c < cols; c++) {
                out[offset + c] = ScalarMatVecKernels.weight(codes, codeBase, rowStart + c, absmax, firstBlock, blockSize);
            }
        }

        /** Lane j: the absmax of the block holding columns 8j..8j+7 of the chunk at element {@code e}. */
        private FloatVector laneScales(long e, Scratch scratch) {
            for (int j = 0; j < LANES; j++) {
                scratch.laneScales[j] = absmax[(int) ((e + 8L * j) / blockSize - firstBlock)];
            }
            return FloatVector.fromArray(FLOATS, scratch.laneScales, 0);
        }
    }

    /** The 16 levels times {@code scale} (float32 products, as dequantization rounds them), in PARTS vectors. */
    private static FloatVector[] levelTables(float scale) {
        FloatVector[] parts = new FloatVector[PARTS];
        for (int p = 0; p < PARTS; p++) {
            parts[p] = FloatVector.fromArray(FLOATS, LEVELS, p * LANES).mul(scale);
        }
        return parts;
    }

    /** Codes of columns 8j+k, per lane j. */
    private static IntVector nibbles(IntVector packed, int k) {
        return packed.lanewise(LSHR, 4 * k).and(0xF);
    }

    /** {@code table[code]} per lane, the 16 entries spread over PARTS vectors. */
    private static FloatVector lookup(IntVector code, FloatVector[] table) {
        if (PARTS == 1) {
            return code.selectFrom(table[0].reinterpretAsInts()).reinterpretAsFloats();
        }
        IntVector low = code.selectFrom(table[0].reinterpretAsInts(), table[1].reinterpretAsInts());
        if (PARTS == 2) {
            return low.reinterpretAsFloats();
        }
        // Four parts of four lanes: indexes wrap modulo 8 in each pair, bit 3 picks the pair.
        IntVector high = code.selectFrom(table[2].reinterpretAsInts(), table[3].reinterpretAsInts());
        return low.blend(high, code.compare(GE, 8)).reinterpretAsFloats();
    }

    // ---- RAW --------------------------------------------------------------------------------------

    @Override
    public void raw(MemorySegment w, FloatType type, int cols, int rowCount, float[] x, int batch, float[] y,
                    int yOffset, int yStride) {
        int full = cols - cols % LANES;
        Scratch scratch = SCRATCH.get();
        if (batch == 1 && type != FloatType.F16) {
            for (int i = 0; i < rowCount; i++) {
                y[yOffset + i] = rawDot(w, type, (long) i * cols, cols, full, x, scratch);
            }
            return;
        }
        float[] widened = scratch.rows(TILE_ROWS * cols);
        for (int i0 = 0; i0 < rowCount; i0 += TILE_ROWS) {
            int n = Math.min(TILE_ROWS, rowCount - i0);
            for (int r = 0; r < n; r++) {
                widen(w, type, (long) (i0 + r) * cols, cols, full, widened, r * cols);
            }
            products(widened, n, cols, full, x, batch, y, yOffset + i0, yStride, scratch);
        }
    }

    private static float rawDot(MemorySegment w, FloatType type, long rowStart, int cols, int full, float[] x,
                                Scratch scratch) {
        FloatVector acc = FloatVector.zero(FLOATS);
        for (int i = 0; i < full; i += LANES) {
            acc = load(w, type, rowStart + i).fma(FloatVector.fromArray(FLOATS, x, i), acc);
        }
        float sum = reduce(acc, scratch);
        for (int c = full; c < cols; c++) {
            sum = Math.fma(type.read(w, rowStart + c), x[c], sum);
        }
        return sum;
    }

    private static void widen(MemorySegment w, FloatType type, long rowStart, int cols, int full, float[] out,
                              int offset) {
        switch (type) {
            case F32 -> MemorySegment.copy(w, F32, 4 * rowStart, out, offset, cols);
            case BF16 -> {
                for (int i = 0; i < full; i += LANES) {
                    load(w, type, rowStart + i).intoArray(out, offset + i);
                }
                for (int c = full; c < cols; c++) {
                    out[offset + c] = type.read(w, rowStart + c);
                }
            }
            case F16 -> {
                for (int c = 0; c < cols; c++) {
                    out[offset + c] = type.read(w, rowStart + c);
                }
            }
        }
    }

    /** LANES elements of F32 or BF16 as floats (exact). */
    private static FloatVector load(MemorySegment w, FloatType type, long index) {
        if (type == FloatType.F32) {
            return FloatVector.fromMemorySegment(FLOATS, w, 4 * index, LE);
        }
        ShortVector half = ShortVector.fromMemorySegment(HALF_SHORTS, w, 2 * index, LE);
        return ((IntVector) half.convertShape(S2I, INTS, 0)).lanewise(LSHL, 16).reinterpretAsFloats();
    }

    // ---- products of decoded rows -----------------------------------------------------------------

    /**
     * {@code y[yBase + b * yStride + r] = dot(w row r, x row b)} for {@code n} rows of {@code cols} floats at
     * {@code w[r * cols]} and every row of x; four rows by three of x at a time in registers.
     */
    private static void products(float[] w, int n, int cols, int full, float[] x, int batch, float[] y, int yBase,
                                 int yStride, Scratch scratch) {
        int b = 0;
        if (n == TILE_ROWS) {
            for (; b + TILE_BATCH <= batch; b += TILE_BATCH) {
                fourByThree(w, cols, full, x, b, y, yBase, yStride, scratch);
            }
        }
        for (int r = 0; r < n; r++) {
            for (int rest = b; rest < batch; rest++) {
                y[yBase + rest * yStride + r] = dot(w, r * cols, x, rest * cols, cols, full, scratch);
            }
        }
    }

    private static float dot(float[] w, int wOffset, float[] x, int xOffset, int cols, int full, Scratch scratch) {
        FloatVector acc = FloatVector.zero(FLOATS);
        for (int i = 0; i < full; i += LANES) {
            acc = FloatVector.fromArray(FLOATS, w, wOffset + i).fma(FloatVector.fromArray(FLOATS, x, xOffset + i), acc);
        }
        return finish(acc, w, wOffset, x, xOffset, cols, full, scratch);
    }

    private static void fourByThree(float[] w, int cols, int full, float[] x, int b, float[] y, int yBase, int yStride,
                                    Scratch scratch) {
        int w0 = 0;
        int w1 = cols;
        int w2 = 2 * cols;
        int w3 = 3 * cols;
        int x0 = b * cols;
        int x1 = x0 + cols;
        int x2 = x1 + cols;
        FloatVector a00 = FloatVector.zero(FLOATS);
        FloatVector a01 = a00;
        FloatVector a02 = a00;
        FloatVector a10 = a00;
        FloatVector a11 = a00;
        FloatVector a12 = a00;
        FloatVector a20 = a00;
        FloatVector a21 = a00;
        FloatVector a22 = a00;
        FloatVector a30 = a00;
        FloatVector a31 = a00;
        FloatVector a32 = a00;
        for (int i = 0; i < full; i += LANES) {
            FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + i);
            FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + i);
            FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + i);
            FloatVector u = FloatVector.fromArray(FLOATS, w, w0 + i);
            a00 = u.fma(v0, a00);
            a01 = u.fma(v1, a01);
            a02 = u.fma(v2, a02);
            u = FloatVector.fromArray(FLOATS, w, w1 + i);
            a10 = u.fma(v0, a10);
            a11 = u.fma(v1, a11);
            a12 = u.fma(v2, a12);
            u = FloatVector.fromArray(FLOATS, w, w2 + i);
            a20 = u.fma(v0, a20);
            a21 = u.fma(v1, a21);
            a22 = u.fma(v2, a22);
            u = FloatVector.fromArray(FLOATS, w, w3 + i);
            a30 = u.fma(v0, a30);
            a31 = u.fma(v1, a31);
            a32 = u.fma(v2, a32);
        }
        int y0 = yBase + b * yStride;
        int y1 = y0 + yStride;
        int y2 = y1 + yStride;
        y[y0] = finish(a00, w, w0, x, x0, cols, full, scratch);
        y[y1] = finish(a01, w, w0, x, x1, cols, full, scratch);
        y[y2] = finish(a02, w, w0, x, x2, cols, full, scratch);
        y[y0 + 1] = finish(a10, w, w1, x, x0, cols, full, scratch);
        y[y1 + 1] = finish(a11, w, w1, x, x1, cols, full, scratch);
        y[y2 + 1] = finish(a12, w, w1, x, x2, cols, full, scratch);
        y[y0 + 2] = finish(a20, w, w2, x, x0, cols, full, scratch);
        y[y1 + 2] = finish(a21, w, w2, x, x1, cols, full, scratch);
        y[y2 + 2] = finish(a22, w, w2, x, x2, cols, full, scratch);
        y[y0 + 3] = finish(a30, w, w3, x, x0, cols, full, scratch);
        y[y1 + 3] = finish(a31, w, w3, x, x1, cols, full, scratch);
        y[y2 + 3] = finish(a32, w, w3, x, x2, cols, full, scratch);
    }

    /** The lanes reduced in their fixed order, then the columns past {@code full} added one by one. */
    private static float finish(FloatVector acc, float[] w, int wOffset, float[] x, int xOffset, int cols, int full,
                                Scratch scratch) {
        float sum = reduce(acc, scratch);
        for (int c = full; c < cols; c++) {
            sum = Math.fma(w[wOffset + c], x[xOffset + c], sum);
        }
        return sum;
    }

    /**
     * The sum of the lanes as a fixed tree: lane i += lane i + h for h = LANES/2, LANES/4, ..., 1; then
     * lane 0. ({@code reduceLanes(ADD)} leaves its order to the implementation.)
     */
    private static float reduce(FloatVector acc, Scratch scratch) {
        float[] lanes = scratch.lanes;
        acc.intoArray(lanes, 0);
        for (int h = LANES / 2; h > 0; h /= 2) {
            for (int i = 0; i < h; i++) {
                lanes[i] += lanes[i + h];
            }
        }
        return lanes[0];
    }
}
