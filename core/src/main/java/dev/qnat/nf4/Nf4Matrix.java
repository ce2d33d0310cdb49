package dev.qnat.nf4;

import dev.qnat.nf4.kernel.MatVecKernelProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * An NF4-quantized weight matrix that multiplies vectors on its 4-bit codes: no f32 copy of its weights
 * or scales is ever made. The weights are {@code rows * cols} elements over the flattened row-major matrix,
 * quantized in blocks of {@code blockSize} as {@link Nf4} does (blocks may straddle rows, and with odd
 * cols a row starts in the middle of a byte), with one f32 absmax per block or double-quantized scales
 * ({@link DoubleQuantization}: a code byte per block, one f32 per group of 256 blocks, the offset and the
 * 256-entry table). The weight at {@code (r, c)} is {@code level[code] * absmax[block]} in float32, exactly
 * what dequantization writes; each output is a float32 sum of its products with x (src/spec/nf4-linear.md).
 *
 * <p>Double-quantized scales are decoded per row range into a small buffer of the thread. Inputs that are
 * mapped files are read through copied chunks, so that a file truncated under the mapping gives an
 * {@code InternalError} rather than a crash.
 */
public final class Nf4Matrix extends WeightMatrix {
    private final MemorySegment codes;
    private final int blockSize;
    /** f32 absmax per block, or null when double-quantized. */
    private final MemorySegment absmax;
    private final MemorySegment scaleCodes;
    private final MemorySegment nestedAbsmax;
    private final float offset;
    private final float[] table;

    private static final ThreadLocal<Scales> SCALES = ThreadLocal.withInitial(Scales::new);

    private Nf4Matrix(MemorySegment codes, int rows, int cols, int blockSize, MemorySegment absmax,
                      MemorySegment scaleCodes, MemorySegment nestedAbsmax, float offset, float[] table) {
        super(rows, cols);
        Nf4.checkBlockSize(blockSize);
        this.codes = codes;
        this.blockSize = blockSize;
        this.absmax = absmax;
        this.scaleCodes = scaleCodes;
        this.nestedAbsmax = nestedAbsmax;
        this.offset = offset;
        this.table = table;
        checkRoom(codes, Nf4.packedSize(elementCount()), "codes");
    }

    /**
     * The matrix of packed {@code codes} with one little-endian f32 {@code absmax} per block. The segments
     * are used in place (not copied) and may be larger than needed.
     *
     * @param codes the packed codes, two per byte (low nibble first), at least {@code ceil(rows * cols / 2)} bytes
     * @param absmax one little-endian f32 per block of {@code blockSize} elements, at least {@code 4 * blocks} bytes
     * @param rows the number of rows, at least 1
     * @param cols the number of columns, at least 1
     * @param blockSize the elements per block, an even number from {@value Nf4#MIN_BLOCK_SIZE} to
     *        {@value Nf4#MAX_BLOCK_SIZE}
     * @return a matrix that reads {@code codes} and {@code absmax} in place
     * @throws IllegalArgumentException if {@code rows} or {@code cols} is below 1, the block size is not valid, or
     *         a segment is too small
     */
    public static Nf4Matrix of(MemorySegment codes, MemorySegment absmax, int rows, int cols, int blockSize) {
        Objects.requireNonNull(codes, "codes");
        Objects.requireNonNull(absmax, "absmax");
        Nf4Matrix matrix = new Nf4Matrix(codes, rows, cols, blockSize, absmax, null, null, 0f, null);
        checkRoom(absmax, 4 * matrix.blocks(), "absmax");
        return matrix;
    }

    /**
     * The matrix of packed {@code codes} with double-quantized scales: {@code scaleCodes} one byte per block,
     * {@code nestedAbsmax} one little-endian f32 per group of {@value DoubleQuantization#GROUP_SIZE} blocks,
     * the offset and the 256-entry table (copied); absmax of block b is
     * {@code table[scaleCodes[b]] * nestedAbsmax[b / 256] + offset}.
     *
     * @param codes the packed codes, two per byte (low nibble first), at least {@code ceil(rows * cols / 2)} bytes
     * @param scaleCodes one code byte per block, at least {@code blocks} bytes
     * @param nestedAbsmax one little-endian f32 per group of 256 blocks, at least {@code 4 * ceil(blocks / 256)} bytes
     * @param offset added to every decoded absmax (the mean the absmax were centred on)
     * @param table the {@value DoubleQuantization#TABLE_SIZE} levels a scale code selects, copied
     * @param rows the number of rows, at least 1
     * @param cols the number of columns, at least 1
     * @param blockSize the elements per block, an even number from {@value Nf4#MIN_BLOCK_SIZE} to
     *        {@value Nf4#MAX_BLOCK_SIZE}
     * @return a matrix that reads the three segments in place
     * @throws IllegalArgumentException if {@code table} has not {@value DoubleQuantization#TABLE_SIZE} entries,
     *         {@code rows} or {@code cols} is below 1, the block size is not valid, or a segment is too small
     */
    public static Nf4Matrix doubleQuantized(MemorySegment codes, MemorySegment scaleCodes, MemorySegment nestedAbsmax,
                                            float offset, float[] table, int rows, int cols, int blockSize) {
        Objects.requireNonNull(codes, "codes");
        Objects.requireNonNull(scaleCodes, "scale codes");
        Objects.requireNonNull(nestedAbsmax, "nested absmax");
        if (Objects.requireNonNull(table, "table").length != DoubleQuantization.TABLE_SIZE) {
            throw new IllegalArgumentException("double-quantization table has " + table.length + " entries, not "
                    + DoubleQuantization.TABLE_SIZE);
        }
        Nf4Matrix matrix = new Nf4Matrix(codes, rows, cols, blockSize, null, scaleCodes, nestedAbsmax, offset,
                table.clone());
        checkRoom(scaleCodes, matrix.blocks(), "scale codes");
        checkRoom(nestedAbsmax, 4 * DoubleQuantization.groupCount(matrix.blocks()), "nested absmax");
        return matrix;
    }

    /**
     * Quantizes {@code rows * cols} finite float32 weights (row-major) into a new matrix in memory of its
     * own, with double quantization or f32 absmax.
     *
     * @param weights the {@code rows * cols} weights, {@code W[r][c]} at {@code r * cols + c}; read, not kept
     * @param rows the number of rows, at least 1
     * @param cols the number of columns, at least 1
     * @param blockSize the elements per block, an even number from {@value Nf4#MIN_BLOCK_SIZE} to
     *        {@value Nf4#MAX_BLOCK_SIZE}
     * @param doubleQuant true to double-quantize the absmax ({@link DoubleQuantization}), false to keep them f32
     * @return the quantized matrix, in memory freed once it is unreachable
     * @throws IllegalArgumentException if {@code weights} does not hold {@code rows * cols} floats, {@code rows} or
     *         {@code cols} is below 1, or the block size is not valid
     * @throws NonFiniteValueException if a weight is a NaN or an infinity
     */
    public static Nf4Matrix quantize(float[] weights, int rows, int cols, int blockSize, boolean doubleQuant) {
        Objects.requireNonNull(weights, "weights");
        if ((long) rows * cols != weights.length) {
            throw new IllegalArgumentException(weights.length + " weights are not " + rows + " x " + cols);
        }
        Arena arena = Arena.ofAuto();
        long blocks = Nf4.blockCount(weights.length, Nf4.checkBlockSize(blockSize));
        MemorySegment codes = arena.allocate(Math.max(1, Nf4.packedSize(weights.length)), 64);
        MemorySegment absmax = arena.allocate(4 * blocks, 64);
        Nf4.quantize(MemorySegment.ofArray(weights), FloatType.F32, blockSize, codes, absmax);
        if (!doubleQuant) {
            return of(codes, absmax, rows, cols, blockSize);
        }
        MemorySegment scaleCodes = arena.allocate(blocks, 64);
        MemorySegment nested = arena.allocate(4 * DoubleQuantization.groupCount(blocks), 64);
        float dqOffset = DoubleQuantization.quantize(absmax, blocks, scaleCodes, nested);
        return doubleQuantized(codes, scaleCodes, nested, dqOffset, DoubleQuantization.table(), rows, cols, blockSize);
    }

    private long elementCount() {
        return (long) rows * cols;
    }

    private long blocks() {
        return Nf4.blockCount(elementCount(), blockSize);
    }

    /**
     * The elements per quantization block, over the flattened row-major matrix.
     *
     * @return the block size, an even number from {@value Nf4#MIN_BLOCK_SIZE} to {@value Nf4#MAX_BLOCK_SIZE}
     */
    public int blockSize() {
        return blockSize;
    }

    /**
     * Whether the scales are double-quantized rather than one f32 absmax per block.
     *
     * @return true if made by {@link #doubleQuantized} (or {@link #quantize} with double quantization)
     */
    public boolean isDoubleQuantized() {
        return absmax == null;
    }

    /**
     * The kernels this JVM multiplies with, e.g. {@code panama-256}.
     *
     * @return the kernels' name, e.g. {@code panama-256} or {@code scalar}
     */
    public static String kernelName() {
        return MatVecKernelProvider.kernels().name();
    }

    /**
     * The dequantized weights, row-major, into {@code dst} of {@code rows * cols} floats (for tests and tools).
     *
     * @param dst receives {@code W[r][c]} at {@code r * cols + c}; exactly {@code rows * cols} floats
     * @throws IllegalArgumentException if {@code dst} does not hold {@code rows * cols} floats
     */
    public void dequantize(float[] dst) {
        if (Objects.requireNonNull(dst, "dst").length != elementCount()) {
            throw new IllegalArgumentException("dst holds " + dst.length + " floats, not " + rows + " x " + cols);
        }
        float[] scales = decodeScales(0, blocks());
        Nf4.dequantize(Staging.of(codes, 0, Nf4.packedSize(elementCount())), MemorySegment.ofArray(scales), blockSize,
                MemorySegment.ofArray(dst), FloatType.F32);
    }

    @Override
    float[] prepare(float[] x, int batch) {
        return MatVecKernelProvider.kernels().prepareNf4(x, batch, cols, blockSize);
    }

    @Override
    void multiplyRows(int firstRow, int endRow, float[] x, int batch, float[] y) {
        long first = (long) firstRow * cols;
        long end = (long) endRow * cols;
        long firstBlock = first / blockSize;
        long endBlock = Nf4.blockCount(end, blockSize);
        float[] scales = decodeScales(firstBlock, endBlock);
        long firstByte = first / 2;
        MemorySegment tile = Staging.of(codes, firstByte, Nf4.packedSize(end) - firstByte);
        MatVecKernelProvider.kernels().nf4(tile, first, scales, firstBlock, blockSize, cols, endRow - firstRow, x,
                batch, y, firstRow, rows);
    }

    /** The f32 absmax of blocks {@code [first, end)}, into the thread's buffer (copied, never read in place). */
    private float[] decodeScales(long first, long end) {
        int n = (int) (end - first);
        Scales buffers = SCALES.get();
        float[] out = buffers.absmax(n);
        if (absmax != null) {
            MemorySegment.copy(absmax, FLOAT, 4 * first, out, 0, n);
            return out;
        }
        byte[] codeBytes = buffers.codes(n);
        MemorySegment.copy(scaleCodes, ValueLayout.JAVA_BYTE, first, codeBytes, 0, n);
        long firstGroup = first / DoubleQuantization.GROUP_SIZE;
        int groups = (int) (DoubleQuantization.groupCount(end) - firstGroup);
        float[] nested = buffers.nested(groups);
        MemorySegment.copy(nestedAbsmax, FLOAT, 4 * firstGroup, nested, 0, groups);
        // Group by group, so that the inner loop is a plain lookup, multiply and add (one long division per
        // block made this 19 % of a matVec's samples).
        for (int g = 0, i = 0; g < groups; g++) {
            float groupAbsmax = nested[g];
            int groupEnd = (int) Math.min(n, (firstGroup + g + 1) * DoubleQuantization.GROUP_SIZE - first);
            for (; i < groupEnd; i++) {
                out[i] = table[codeBytes[i] & 0xFF] * groupAbsmax + offset;
            }
        }
        return out;
    }

    /** One thread's scale buffers, grown to the largest row range seen. */
    private static final class Scales {
        private float[] absmax = new float[0];
        private byte[] codes = new byte[0];
        private float[] nested = new float[0];

        float[] absmax(int n) {
            if (absmax.length < n) {
                absmax = new float[n];
            }
            return absmax;
        }

        byte[] codes(int n) {
            if (codes.length < n) {
                codes = new byte[n];
            }
            return codes;
        }

        float[] nested(int n) {
            if (nested.length < n) {
                nested = new float[n];
            }
            return nested;
        }
    }

    @Override
    MemorySegment[] segments() {
        return absmax != null ? new MemorySegment[] {codes, absmax} : new MemorySegment[] {codes, scaleCodes, nestedAbsmax};
    }

    private static void checkRoom(MemorySegment segment, long needed, String what) {
        if (segment.byteSize() < needed) {
            throw new IllegalArgumentException(what + " hold " + segment.byteSize() + " bytes, the matrix needs " + needed);
        }
    }

    @Override
    public String toString() {
        return "Nf4Matrix " + rows + " x " + cols + " block " + blockSize + (isDoubleQuantized() ? " double-quantized" : "");
    }
}
