package dev.qnat.nf4.kernel;

import static jdk.incubator.vector.VectorOperators.GT;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.S2I;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4Codebook;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Matrix kernels on the Panama Vector API, at the codec kernels' width (128, 256 or 512 bits; LANES floats).
 *
 * <p>NF4 rows are read in chunks of {@code E * LANES} columns ({@link #CODES_PER_LANE}): LANES int lanes of
 * code bytes, lane j holding the codes of the chunk's columns Ej..Ej+E-1, column Ej+k at bits 4k..4k+3
 * (QNAT's low-nibble-first order). Shifting by 4k and masking gives the codes of columns Ej+k in lane j, so x
 * is permuted once per call into that order ({@link #prepareNf4}) and everything after is lane-wise: shift,
 * mask, a 16-entry lookup of the levels already multiplied by the block's absmax (once per chunk), and an
 * FMA into one of four partial sums (four, so that the FMA latency does not bound the loop). Rows go that
 * way when rows and blocks start on multiples of the chunk width; when only on multiples of 8 columns, each
 * chunk is decoded with a per-lane absmax and then multiplied; other shapes run the scalar reference.
 * For a batch, up to 32 rows are decoded once into a float buffer of the thread, and four of them at a time
 * are multiplied with three rows of x (twelve sums in registers, one partial sum of each output per pass),
 * in spans of columns that stay in L1. Summation orders: src/spec/nf4-linear.md.
 */
final class PanamaMatVecKernels implements MatVecKernels {
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfShort CODE_WORD = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    private static final int BITS = widthOf(Nf4KernelProvider.platformKernels().name());
    private static final VectorSpecies<Float> FLOATS = VectorSpecies.of(float.class, VectorShape.forBitSize(BITS));
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, VectorShape.forBitSize(BITS));
    /** Half-width shorts: as many lanes as {@link #FLOATS}, for BF16 loads and 16-bit code words. */
    private static final VectorSpecies<Short> HALF_SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(BITS / 2));
    /** Full-width shorts: the code words of a chunk of eight codes per lane, seen as ints. */
    private static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(BITS));
    private static final int LANES = FLOATS.length();
    /**
     * Codes per int lane of an NF4 chunk. At 16 lanes four (16 bits of code bytes widened to an int lane), so
     * that a chunk is 64 columns, one block of the default size, looked up in one table of levels times that
     * block's absmax: with eight, a chunk held two blocks, and each step's looked-up levels took a multiply by
     * a vector of the halves' absmax (21 vector instructions per 64 columns instead of 17; batch 1 about 6 %
     * slower, BENCHMARKS.md). Below 16 lanes eight (a whole int of code bytes per lane; chunks of 64 or 32).
     */
    private static final int CODES_PER_LANE = LANES == 16 ? 4 : 8;
    /** Columns per NF4 chunk. */
    static final int CHUNK = CODES_PER_LANE * LANES;
    /** Vectors that hold the 16 levels. */
    private static final int PARTS = Math.max(1, Nf4Codebook.LEVELS / LANES);
    private static final float[] LEVELS = new float[PARTS * LANES];
    /** Where parts 0 to 3 of the levels start in LEVELS (parts past PARTS repeat the last, unused). */
    private static final int PART_0 = 0;
    private static final int PART_1 = Math.min(1, PARTS - 1) * LANES;
    private static final int PART_2 = Math.min(2, PARTS - 1) * LANES;
    private static final int PART_3 = Math.min(3, PARTS - 1) * LANES;
    /** Rows of W decoded together for a batch (each x row is read once per such tile), and rows of x
     *  multiplied with one of them in registers. */
    private static final int TILE_ROWS = 32;
    private static final int TILE_BATCH = 3;
    /** Rows of w multiplied with those rows of x at once where the tile has them (fourByThree). */
    private static final int TILE_W_ROWS = 4;
    /** Floats of partial sums kept per row of w between spans: four for each of the tile's rows of x. */
    private static final int ROW_SUMS = 4 * TILE_BATCH * LANES;
    /**
     * Columns per span of a batch product: four rows of w and three of x, 28 KiB at 1024 columns, stay in L1
     * through fourByThree's four passes (512 columns: 8 % slower at batch 32 and 128).
     */
    private static final int SPAN = 1024;

    /**
     * The butterfly of {@link #reduceAll}, level by level (h = LANES/2, .., 1; LANES entries each): the lanes
     * with bit h set, and the lane each one swaps with (i ^ h). Last, where vector g's sum ends: at the lane
     * whose index is g's bits reversed.
     */
    private static final int REDUCE_LEVELS = Integer.numberOfTrailingZeros(LANES);
    private static final boolean[] UPPER_LANES = new boolean[REDUCE_LEVELS * LANES];
    private static final int[] SWAPPED_LANES = new int[REDUCE_LEVELS * LANES];
    private static final int[] SUM_LANE = new int[LANES];

    static {
        for (int code = 0; code < Nf4Codebook.LEVELS; code++) {
            LEVELS[code] = Nf4Codebook.level(code);
        }
        for (int level = 0, h = LANES / 2; h > 0; level++, h /= 2) {
            for (int i = 0; i < LANES; i++) {
                UPPER_LANES[level * LANES + i] = (i & h) != 0;
                SWAPPED_LANES[level * LANES + i] = i ^ h;
            }
        }
        for (int g = 0; g < LANES; g++) {
            SUM_LANE[g] = Integer.reverse(g) >>> (Integer.SIZE - REDUCE_LEVELS);
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    static final PanamaMatVecKernels INSTANCE = new PanamaMatVecKernels();

    private PanamaMatVecKernels() {}

    /** Per-thread buffers: lane sums, per-lane scales, decoded rows. */
    private static final class Scratch {
        final float[] lanes = new float[LANES];
        /** LANES vectors of per-output totals for reduceAll, and their sums. */
        final float[] totals = new float[LANES * LANES];
        final float[] outputs = new float[LANES];
        final float[] laneScales = new float[LANES];
        private float[] rows = new float[0];
        private float[] row = new float[0];
        private float[] sums = new float[0];
        private short[] codeWords = new short[0];
        private float[] chunkAbsmax = new float[0];

        short[] codeWords(int n) {
            return codeWords = codeWords.length < n ? new short[n] : codeWords;
        }

        float[] chunkAbsmax(int n) {
            return chunkAbsmax = atLeast(chunkAbsmax, n);
        }

        float[] sums(int n) {
            return sums = atLeast(sums, n);
        }

        float[] row(int n) {
            return row = atLeast(row, n);
        }

        float[] rows(int n) {
            return rows = atLeast(rows, n);
        }

        /** {@code buffer}, or a new one of {@code n} floats where it is shorter: grown, never shrunk. */
        private static float[] atLeast(float[] buffer, int n) {
            return buffer.length < n ? new float[n] : buffer;
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
                    for (int k = 0; k < CODES_PER_LANE; k++) {
                        permuted[q + k * LANES + j] = x[q + CODES_PER_LANE * j + k];
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

        /** Whether each chunk lies in one block: rows and blocks start at multiples of the chunk. */
        boolean aligned() {
            return blockSize % CHUNK == 0 && cols % CHUNK == 0;
        }

        /**
         * The dot product of the row starting at element {@code rowStart} with permuted x (batch 1). Vector
         * v = q / LANES + k of the row goes to partial sum v mod 4: the four sums rotate after each step
         * (four or eight steps a chunk, so each chunk starts on p0). One flat loop whose small helpers C2
         * inlines: a helper it calls out of line boxes the vectors it passes.
         */
        float dot(long rowStart, float[] x, Scratch scratch) {
            if (!aligned()) {
                float[] row = scratch.row(cols);
                decode(rowStart, row, 0, scratch);
                return PanamaMatVecKernels.dot(row, 0, x, 0, cols, full, scratch);
            }
            FloatVector p0 = FloatVector.zero(FLOATS);
            FloatVector p1 = p0;
            FloatVector p2 = p0;
            FloatVector p3 = p0;
            short[] words = scratch.codeWords(full / 4);
            float[] chunkAbsmax = scratch.chunkAbsmax(full / CHUNK);
            read(rowStart, words, chunkAbsmax);
            // One induction variable: with a second one (the chunk's index beside its column) the loop ran
            // 4 % slower (MatVecBenchmark, 512 and 11008 rows).
            int chunks = full / CHUNK;
            for (int chunk = 0; chunk < chunks; chunk++) {
                int q = chunk * CHUNK;
                IntVector packed = codeLanes(words, q);
                float a = chunkAbsmax[chunk];
                IntVector t0 = FloatVector.fromArray(FLOATS, LEVELS, PART_0).mul(a).reinterpretAsInts();
                IntVector t1 = FloatVector.fromArray(FLOATS, LEVELS, PART_1).mul(a).reinterpretAsInts();
                IntVector t2 = FloatVector.fromArray(FLOATS, LEVELS, PART_2).mul(a).reinterpretAsInts();
                IntVector t3 = FloatVector.fromArray(FLOATS, LEVELS, PART_3).mul(a).reinterpretAsInts();
                for (int k = 0; k < CODES_PER_LANE; k++) {
                    IntVector code = packed.lanewise(LSHR, 4 * k).and(0xF);
                    FloatVector w = lookup(code, t0, t1, t2, t3).reinterpretAsFloats();
                    FloatVector sum = w.fma(FloatVector.fromArray(FLOATS, x, q + k * LANES), p0);
                    p0 = p1;
                    p1 = p2;
                    p2 = p3;
                    p3 = sum;
                }
            }
            float sum = reduce(p0, p1, p2, p3, scratch);
            for (int c = full; c < cols; c++) {
                sum = Math.fma(ScalarMatVecKernels.weight(codes, codeBase, rowStart + c, absmax, firstBlock, blockSize),
                        x[c], sum);
            }
            return sum;
        }

        /**
         * The code words of the row's whole chunks into {@code words} (16 bits each), and where
         * {@code chunkAbsmax} is not null (an aligned row) the absmax of each chunk: the chunk loops then read
         * heap arrays, whose checks C2 hoists, where each read of the segment and each step of the block walk
         * cost a dozen scalar instructions per chunk.
         */
        private void read(long rowStart, short[] words, float[] chunkAbsmax) {
            MemorySegment.copy(codes, CODE_WORD, (rowStart - codeBase) >> 1, words, 0, full / 4);
            if (chunkAbsmax == null) {
                return;
            }
            int block = (int) (rowStart / blockSize - firstBlock);
            if (blockSize == CHUNK) { // block 64 at 8 and 16 lanes: a chunk is a block
                System.arraycopy(absmax, block, chunkAbsmax, 0, full / CHUNK);
                return;
            }
            int chunksLeft = (int) ((blockSize - rowStart % blockSize) / CHUNK); // in the row's first block
            for (int s = 0; s < full / CHUNK; s++, chunksLeft--) {
                if (chunksLeft == 0) {
                    block++;
                    chunksLeft = blockSize / CHUNK;
                }
                chunkAbsmax[s] = absmax[block];
            }
        }

        /**
         * The dequantized row in the permuted order (the tail in natural order) at {@code out[offset]}: the
         * code looked up in the levels times the chunk's absmax when the chunk lies in one block, else in the
         * levels and times each lane's absmax (the same float32 product).
         */
        void decode(long rowStart, float[] out, int offset, Scratch scratch) {
            boolean aligned = aligned();
            short[] words = scratch.codeWords(full / 4);
            float[] chunkAbsmax = scratch.chunkAbsmax(full / CHUNK);
            read(rowStart, words, aligned ? chunkAbsmax : null);
            int chunks = full / CHUNK;
            for (int chunk = 0; chunk < chunks; chunk++) { // one induction variable, as in dot
                int q = chunk * CHUNK;
                IntVector packed = codeLanes(words, q);
                FloatVector scale = aligned ? null : laneScales(rowStart + q, scratch);
                float a = aligned ? chunkAbsmax[chunk] : 1f;
                IntVector t0 = FloatVector.fromArray(FLOATS, LEVELS, PART_0).mul(a).reinterpretAsInts();
                IntVector t1 = FloatVector.fromArray(FLOATS, LEVELS, PART_1).mul(a).reinterpretAsInts();
                IntVector t2 = FloatVector.fromArray(FLOATS, LEVELS, PART_2).mul(a).reinterpretAsInts();
                IntVector t3 = FloatVector.fromArray(FLOATS, LEVELS, PART_3).mul(a).reinterpretAsInts();
                for (int k = 0; k < CODES_PER_LANE; k++) {
                    IntVector code = packed.lanewise(LSHR, 4 * k).and(0xF);
                    FloatVector weights = lookup(code, t0, t1, t2, t3).reinterpretAsFloats();
                    (scale == null ? weights : weights.mul(scale)).intoArray(out, offset + q + k * LANES);
                }
            }
            for (int c = full; c < cols; c++) {
                out[offset + c] = ScalarMatVecKernels.weight(codes, codeBase, rowStart + c, absmax, firstBlock, blockSize);
            }
        }

        /** Lane j: the absmax of the block holding columns Ej..Ej+E-1 of the chunk at element {@code e}. */
        private FloatVector laneScales(long e, Scratch scratch) {
            for (int j = 0; j < LANES; j++) {
                scratch.laneScales[j] = absmax[(int) ((e + (long) CODES_PER_LANE * j) / blockSize - firstBlock)];
            }
            return FloatVector.fromArray(FLOATS, scratch.laneScales, 0);
        }
    }

    /**
     * The code words of the chunk at column {@code q} of a row's words as LANES int lanes of
     * {@link #CODES_PER_LANE} codes: eight, the words as they are; four, each 16-bit word widened (the sign
     * it extends lies above the codes' bits).
     */
    private static IntVector codeLanes(short[] words, int q) {
        return CODES_PER_LANE == 8 ? ShortVector.fromArray(SHORTS, words, q >>> 2).reinterpretAsInts()
                : (IntVector) ShortVector.fromArray(HALF_SHORTS, words, q >>> 2).convertShape(S2I, INTS, 0);
    }

    /**
     * Entry {@code code} of a 16-entry table held in {@link #PARTS} vectors (from t0), per lane. selectFrom
     * wraps an index modulo its tables' lanes. The upper codes by GT 7: GE 8 is two instructions more on
     * AVX2, and the matVec loop ran 1.5x slower with it. (The codes are masked to 4 bits before: leaving the
     * mask to selectFrom's wrap ran 15 % slower at 16 lanes.)
     */
    private static IntVector lookup(IntVector code, IntVector t0, IntVector t1, IntVector t2, IntVector t3) {
        return PARTS == 1 ? code.selectFrom(t0)
                : PARTS == 2 ? code.selectFrom(t0).blend(code.selectFrom(t1), code.compare(GT, 7))
                : code.selectFrom(t0, t1).blend(code.selectFrom(t2, t3), code.compare(GT, 7));
    }

    // ---- RAW --------------------------------------------------------------------------------------

    @Override
    public void raw(MemorySegment w, FloatType type, int cols, int rowCount, float[] x, int batch, float[] y,
                    int yOffset, int yStride) {
        int full = cols - cols % (4 * LANES);
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
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int i = 0; i < full; i += 4 * LANES) {
            a0 = load(w, type, rowStart + i).fma(FloatVector.fromArray(FLOATS, x, i), a0);
            a1 = load(w, type, rowStart + i + LANES).fma(FloatVector.fromArray(FLOATS, x, i + LANES), a1);
            a2 = load(w, type, rowStart + i + 2 * LANES).fma(FloatVector.fromArray(FLOATS, x, i + 2 * LANES), a2);
            a3 = load(w, type, rowStart + i + 3 * LANES).fma(FloatVector.fromArray(FLOATS, x, i + 3 * LANES), a3);
        }
        float sum = reduce(a0, a1, a2, a3, scratch);
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
     * {@code w[r * cols]} and every row of x, three rows of x at a time per row of w. The columns go in
     * spans of {@link #SPAN} so that the rows of w and x in use stay in L1; the partial sums wait in
     * {@code scratch.sums} between spans (stored and loaded exactly, so the order is that of {@link #dot}).
     */
    private static void products(float[] w, int n, int cols, int full, float[] x, int batch, float[] y, int yBase,
                                 int yStride, Scratch scratch) {
        float[] sums = scratch.sums(n * ROW_SUMS);
        for (int b = 0; b < batch; b += TILE_BATCH) {
            // The last one or two rows of x fill the tile by repeating the last: the repeats' sums are dropped
            // (a dot product per row there instead took 14 % of a batch of 128's time).
            int count = Math.min(TILE_BATCH, batch - b);
            int x0 = b * cols;
            int x1 = (b + Math.min(1, count - 1)) * cols;
            int x2 = (b + count - 1) * cols;
            Arrays.fill(sums, 0, n * ROW_SUMS, 0f);
            for (int from = 0; from < full; from += SPAN) {
                int to = Math.min(full, from + SPAN);
                int r = 0;
                for (; r + TILE_W_ROWS <= n; r += TILE_W_ROWS) {
                    fourByThree(w, r * cols, cols, from, to, x, x0, x1, x2, sums, r * ROW_SUMS);
                }
                for (; r < n; r++) {
                    oneByThree(w, r * cols, from, to, x, x0, x1, x2, sums, r * ROW_SUMS);
                }
            }
            // The tile's outputs, LANES at a time: their four partial sums added lane-wise, then reduced at once.
            int outputs = n * count;
            for (int first = 0; first < outputs; first += LANES) {
                int group = Math.min(LANES, outputs - first);
                for (int k = 0; k < group; k++) {
                    int at = (first + k) / count * ROW_SUMS + 4 * ((first + k) % count) * LANES;
                    FloatVector.fromArray(FLOATS, sums, at).add(FloatVector.fromArray(FLOATS, sums, at + 2 * LANES))
                            .add(FloatVector.fromArray(FLOATS, sums, at + LANES)
                                    .add(FloatVector.fromArray(FLOATS, sums, at + 3 * LANES)))
                            .intoArray(scratch.totals, k * LANES);
                }
                reduceAll(scratch.totals, scratch.outputs);
                for (int k = 0; k < group; k++) {
                    int r = (first + k) / count;
                    int j = (first + k) % count;
                    y[yBase + (b + j) * yStride + r] = finish(scratch.outputs[k], w, r * cols, x, (b + j) * cols, cols,
                            full);
                }
            }
        }
    }

    /** Vector v = i / LANES of the row goes to partial sum v mod 4; {@code full} is a multiple of 4 LANES. */
    private static float dot(float[] w, int wOffset, float[] x, int xOffset, int cols, int full, Scratch scratch) {
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        for (int i = 0; i < full; i += 4 * LANES) {
            a0 = FloatVector.fromArray(FLOATS, w, wOffset + i).fma(FloatVector.fromArray(FLOATS, x, xOffset + i), a0);
            a1 = FloatVector.fromArray(FLOATS, w, wOffset + i + LANES)
                    .fma(FloatVector.fromArray(FLOATS, x, xOffset + i + LANES), a1);
            a2 = FloatVector.fromArray(FLOATS, w, wOffset + i + 2 * LANES)
                    .fma(FloatVector.fromArray(FLOATS, x, xOffset + i + 2 * LANES), a2);
            a3 = FloatVector.fromArray(FLOATS, w, wOffset + i + 3 * LANES)
                    .fma(FloatVector.fromArray(FLOATS, x, xOffset + i + 3 * LANES), a3);
        }
        return finish(reduce(a0, a1, a2, a3, scratch), w, wOffset, x, xOffset, cols, full);
    }

    /**
     * {@link #dot}'s partial sums of one row of w with the rows of x at {@code x0, x1, x2} over columns
     * {@code [from, to)}, continued from and left in {@code sums[at ..]} (x row j: partial sums m at
     * {@code at + (4j + m) LANES}).
     * Twelve partial sums in registers.
     */
    private static void oneByThree(float[] w, int wOffset, int from, int to, float[] x, int x0, int x1, int x2,
                                   float[] sums, int at) {
        FloatVector a00 = FloatVector.fromArray(FLOATS, sums, at);
        FloatVector a01 = FloatVector.fromArray(FLOATS, sums, at + LANES);
        FloatVector a02 = FloatVector.fromArray(FLOATS, sums, at + 2 * LANES);
        FloatVector a03 = FloatVector.fromArray(FLOATS, sums, at + 3 * LANES);
        FloatVector a10 = FloatVector.fromArray(FLOATS, sums, at + 4 * LANES);
        FloatVector a11 = FloatVector.fromArray(FLOATS, sums, at + 5 * LANES);
        FloatVector a12 = FloatVector.fromArray(FLOATS, sums, at + 6 * LANES);
        FloatVector a13 = FloatVector.fromArray(FLOATS, sums, at + 7 * LANES);
        FloatVector a20 = FloatVector.fromArray(FLOATS, sums, at + 8 * LANES);
        FloatVector a21 = FloatVector.fromArray(FLOATS, sums, at + 9 * LANES);
        FloatVector a22 = FloatVector.fromArray(FLOATS, sums, at + 10 * LANES);
        FloatVector a23 = FloatVector.fromArray(FLOATS, sums, at + 11 * LANES);
        for (int i = from; i < to; i += 4 * LANES) {
            FloatVector u = FloatVector.fromArray(FLOATS, w, wOffset + i);
            a00 = u.fma(FloatVector.fromArray(FLOATS, x, x0 + i), a00);
            a10 = u.fma(FloatVector.fromArray(FLOATS, x, x1 + i), a10);
            a20 = u.fma(FloatVector.fromArray(FLOATS, x, x2 + i), a20);
            u = FloatVector.fromArray(FLOATS, w, wOffset + i + LANES);
            a01 = u.fma(FloatVector.fromArray(FLOATS, x, x0 + i + LANES), a01);
            a11 = u.fma(FloatVector.fromArray(FLOATS, x, x1 + i + LANES), a11);
            a21 = u.fma(FloatVector.fromArray(FLOATS, x, x2 + i + LANES), a21);
            u = FloatVector.fromArray(FLOATS, w, wOffset + i + 2 * LANES);
            a02 = u.fma(FloatVector.fromArray(FLOATS, x, x0 + i + 2 * LANES), a02);
            a12 = u.fma(FloatVector.fromArray(FLOATS, x, x1 + i + 2 * LANES), a12);
            a22 = u.fma(FloatVector.fromArray(FLOATS, x, x2 + i + 2 * LANES), a22);
            u = FloatVector.fromArray(FLOATS, w, wOffset + i + 3 * LANES);
            a03 = u.fma(FloatVector.fromArray(FLOATS, x, x0 + i + 3 * LANES), a03);
            a13 = u.fma(FloatVector.fromArray(FLOATS, x, x1 + i + 3 * LANES), a13);
            a23 = u.fma(FloatVector.fromArray(FLOATS, x, x2 + i + 3 * LANES), a23);
        }
        a00.intoArray(sums, at);
        a01.intoArray(sums, at + LANES);
        a02.intoArray(sums, at + 2 * LANES);
        a03.intoArray(sums, at + 3 * LANES);
        a10.intoArray(sums, at + 4 * LANES);
        a11.intoArray(sums, at + 5 * LANES);
        a12.intoArray(sums, at + 6 * LANES);
        a13.intoArray(sums, at + 7 * LANES);
        a20.intoArray(sums, at + 8 * LANES);
        a21.intoArray(sums, at + 9 * LANES);
        a22.intoArray(sums, at + 10 * LANES);
        a23.intoArray(sums, at + 11 * LANES);
    }

    /**
     * {@link #oneByThree} for four rows of w at once, in four passes: pass m adds vectors m, m + 4, m + 8, ..
     * of the span into partial sum m of each of the twelve outputs, the very sequence that partial sum gets
     * in {@link #dot}, so the bits are the same. Per vector 4 loads of w and 3 of x serve 12 FMAs, where
     * oneByThree needs 4 loads for 3: with its 1 + 3 loads per 3 FMAs the core stayed at about 55 GFLOP/s
     * even from L1 (a throwaway loop of that shape), a third of its FMA peak.
     */
    private static void fourByThree(float[] w, int wOffset, int cols, int from, int to, float[] x, int x0, int x1,
                                    int x2, float[] sums, int at) {
        int w0 = wOffset;
        int w1 = w0 + cols;
        int w2 = w1 + cols;
        int w3 = w2 + cols;
        int row = ROW_SUMS;
        for (int m = 0; m < 4; m++) {
            // Partial sum m of w row i with x row j at at + i * row + (4j + m) * LANES.
            int s0 = at + m * LANES;
            FloatVector a00 = FloatVector.fromArray(FLOATS, sums, s0);
            FloatVector a01 = FloatVector.fromArray(FLOATS, sums, s0 + 4 * LANES);
            FloatVector a02 = FloatVector.fromArray(FLOATS, sums, s0 + 8 * LANES);
            FloatVector a10 = FloatVector.fromArray(FLOATS, sums, s0 + row);
            FloatVector a11 = FloatVector.fromArray(FLOATS, sums, s0 + row + 4 * LANES);
            FloatVector a12 = FloatVector.fromArray(FLOATS, sums, s0 + row + 8 * LANES);
            FloatVector a20 = FloatVector.fromArray(FLOATS, sums, s0 + 2 * row);
            FloatVector a21 = FloatVector.fromArray(FLOATS, sums, s0 + 2 * row + 4 * LANES);
            FloatVector a22 = FloatVector.fromArray(FLOATS, sums, s0 + 2 * row + 8 * LANES);
            FloatVector a30 = FloatVector.fromArray(FLOATS, sums, s0 + 3 * row);
            FloatVector a31 = FloatVector.fromArray(FLOATS, sums, s0 + 3 * row + 4 * LANES);
            FloatVector a32 = FloatVector.fromArray(FLOATS, sums, s0 + 3 * row + 8 * LANES);
            for (int i = from + m * LANES; i < to; i += 4 * LANES) {
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
            a00.intoArray(sums, s0);
            a01.intoArray(sums, s0 + 4 * LANES);
            a02.intoArray(sums, s0 + 8 * LANES);
            a10.intoArray(sums, s0 + row);
            a11.intoArray(sums, s0 + row + 4 * LANES);
            a12.intoArray(sums, s0 + row + 8 * LANES);
            a20.intoArray(sums, s0 + 2 * row);
            a21.intoArray(sums, s0 + 2 * row + 4 * LANES);
            a22.intoArray(sums, s0 + 2 * row + 8 * LANES);
            a30.intoArray(sums, s0 + 3 * row);
            a31.intoArray(sums, s0 + 3 * row + 4 * LANES);
            a32.intoArray(sums, s0 + 3 * row + 8 * LANES);
        }
    }

    /** The columns past {@code full} added one by one to the reduced partial sums. */
    private static float finish(float sum, float[] w, int wOffset, float[] x, int xOffset, int cols, int full) {
        for (int c = full; c < cols; c++) {
            sum = Math.fma(w[wOffset + c], x[xOffset + c], sum);
        }
        return sum;
    }

    /**
     * {@link #reduce}'s tree for LANES vectors at once: vector g at {@code totals[g * LANES]}, its sum to
     * {@code sums[g]}. Level h pairs vectors a and b into one whose lanes i with bit h clear hold
     * {@code a[i] + a[i + h]} and the others {@code b[i] + b[i - h]}, the additions of the tree's level h
     * (commuted, which gives the same float); after the last level each sum sits in one lane. About 4
     * instructions per output where the scalar tree took some 45.
     */
    private static void reduceAll(float[] totals, float[] sums) {
        for (int level = 0, vectors = LANES; level < REDUCE_LEVELS; level++, vectors /= 2) {
            VectorMask<Float> upper = VectorMask.fromArray(FLOATS, UPPER_LANES, level * LANES);
            VectorShuffle<Float> swap = VectorShuffle.fromArray(FLOATS, SWAPPED_LANES, level * LANES);
            for (int k = 0; k < vectors / 2; k++) {
                FloatVector a = FloatVector.fromArray(FLOATS, totals, 2 * k * LANES);
                FloatVector b = FloatVector.fromArray(FLOATS, totals, (2 * k + 1) * LANES);
                a.blend(b, upper).add(b.blend(a, upper).rearrange(swap)).intoArray(totals, k * LANES);
            }
        }
        for (int g = 0; g < LANES; g++) {
            sums[g] = totals[SUM_LANE[g]];
        }
    }

    /**
     * The four partial sums reduced in a fixed order: {@code (p0 + p2) + (p1 + p3)} lane by lane, then the
     * lanes as a tree, lane i += lane i + h for h = LANES/2, LANES/4, ..., 1, then lane 0.
     * ({@code reduceLanes(ADD)} leaves its order to the implementation.)
     */
    private static float reduce(FloatVector p0, FloatVector p1, FloatVector p2, FloatVector p3, Scratch scratch) {
        float[] lanes = scratch.lanes;
        p0.add(p2).add(p1.add(p3)).intoArray(lanes, 0);
        for (int h = LANES / 2; h > 0; h /= 2) {
            for (int i = 0; i < h; i++) {
                lanes[i] += lanes[i + h];
            }
        }
        return lanes[0];
    }
}
