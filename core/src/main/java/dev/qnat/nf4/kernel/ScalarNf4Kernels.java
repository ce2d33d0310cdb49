package dev.qnat.nf4.kernel;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.nf4.QuantizationError;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The reference implementation: one element at a time, written to read like the specification
 * (src/spec/nf4-codec.md), each block read into arrays first. The vector kernels use its helpers for
 * their tails.
 */
public final class ScalarNf4Kernels implements Nf4Kernels {
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    public static final ScalarNf4Kernels INSTANCE = new ScalarNf4Kernels();

    private ScalarNf4Kernels() {}

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public long firstNonFinite(MemorySegment src, FloatType type, long from, long to) {
        for (long i = from; i < to; i++) {
            if (!Float.isFinite(type.read(src, i))) {
                return i;
            }
        }
        return -1;
    }

    @Override
    public void quantize(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                         long endBlock, MemorySegment codes, MemorySegment absmax) {
        quantizeBlocks(src, type, count, blockSize, firstBlock, endBlock, codes, absmax, null, null);
    }

    /**
     * Each block: its absmax, then its codes, then (where {@code into} is not null) its error while it is
     * in the arrays. (Measured again from the input instead, a 34 M-element checkpoint's default quantize
     * took 0.6 s more than without figures: it runs mostly before C2.)
     */
    private static void quantizeBlocks(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                       long endBlock, MemorySegment codes, MemorySegment absmax,
                                       QuantizationError into, MemorySegment blockTerms) {
        BlockArrays arrays = BLOCK_ARRAYS.get();
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float[] values = arrays.read(src, type, start, length);
            float blockAbsmax = absmax(values, length);
            absmax.set(FLOAT, 4 * block, blockAbsmax);
            encode(values, length, blockAbsmax, arrays.codes);
            if (into != null) {
                measure(values, arrays.codes, length, blockAbsmax, into, blockTerms, block, true);
            }
            MemorySegment.copy(arrays.codes, 0, codes, JAVA_BYTE, start / 2, (length + 1) / 2);
        }
    }

    /**
     * Per thread: a block's elements as floats, and its code bytes. The block loops read the block with one
     * bulk copy and index arrays: small models run on these kernels mostly before C2 has compiled them,
     * where every segment access is a chain of calls.
     */
    private static final ThreadLocal<BlockArrays> BLOCK_ARRAYS = ThreadLocal.withInitial(BlockArrays::new);

    private static final class BlockArrays {
        float[] values = new float[0];
        short[] halves = new short[0];
        byte[] codes = new byte[0];

        /** Elements {@code [from, from + length)} of {@code src} as floats (exact), in {@link #values}. */
        float[] read(MemorySegment src, FloatType type, long from, int length) {
            if (values.length < length) {
                values = new float[length];
                halves = new short[length];
                codes = new byte[(length + 1) / 2];
            }
            if (type == FloatType.F32) {
                MemorySegment.copy(src, FLOAT, 4 * from, values, 0, length);
            } else {
                MemorySegment.copy(src, HALF, 2 * from, halves, 0, length);
                for (int i = 0; i < length; i++) {
                    values[i] = type.halfBitsToFloat(halves[i]);
                }
            }
            return values;
        }
    }

    @Override
    public void mseScales(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                          MemorySegment scales) {
        float[] normalized = new float[(int) Math.min(blockSize, count)];
        float[] crossPartials = new float[MseScaleRule.GROUP];
        float[] levelPartials = new float[MseScaleRule.GROUP];
        float[] cross = new float[MseScaleRule.CANDIDATES];
        float[] levels = new float[MseScaleRule.CANDIDATES];
        BlockArrays arrays = BLOCK_ARRAYS.get();
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float[] values = arrays.read(src, type, start, length);
            float blockAbsmax = absmax(values, length);
            float scale = blockAbsmax;
            if (MseScaleRule.searches(blockAbsmax)) {
                float reciprocal = 1f / blockAbsmax;
                for (int i = 0; i < length; i++) {
                    normalized[i] = values[i] * reciprocal;
                }
                scale = mseScale(normalized, length, blockAbsmax, crossPartials, levelPartials, cross, levels);
            }
            scales.set(FLOAT, 4 * block, scale);
        }
    }

    /** {@code u[at + i] = x[start + i] * reciprocal} for i in {@code [from, length)}. */
    static void normalize(MemorySegment src, FloatType type, long start, int from, int length, float reciprocal,
                          float[] normalized, int at) {
        for (int i = from; i < length; i++) {
            normalized[at + i] = type.read(src, start + i) * reciprocal;
        }
    }

    /**
     * The MSE rule for one block, given its elements in absmax units: each candidate's sums, in 16 partial
     * sums by index mod 16 over whole groups of 16 and one running sum over the rest, every term fused.
     */
    private static float mseScale(float[] normalized, int length, float absmax, float[] crossPartials,
                                  float[] levelPartials, float[] cross, float[] levels) {
        int grouped = length - length % MseScaleRule.GROUP;
        for (int k = 0; k < MseScaleRule.CANDIDATES; k++) {
            float step = MseScaleRule.STEPS[k];
            Arrays.fill(crossPartials, 0f);
            Arrays.fill(levelPartials, 0f);
            for (int i = 0; i < grouped; i++) {
                float u = normalized[i];
                float level = Nf4Codebook.level(Nf4Codebook.encode(u * step));
                crossPartials[i % MseScaleRule.GROUP] = Math.fma(u, level, crossPartials[i % MseScaleRule.GROUP]);
                levelPartials[i % MseScaleRule.GROUP] = Math.fma(level, level, levelPartials[i % MseScaleRule.GROUP]);
            }
            cross[k] = tree(crossPartials) + restCross(normalized, grouped, length, step);
            levels[k] = tree(levelPartials) + restLevels(normalized, grouped, length, step);
        }
        return MseScaleRule.choose(absmax, cross, levels, 0, 1);
    }

    private static float tree(float[] p) {
        return MseScaleRule.tree((p[0] + p[8]) + (p[4] + p[12]), (p[1] + p[9]) + (p[5] + p[13]),
                (p[2] + p[10]) + (p[6] + p[14]), (p[3] + p[11]) + (p[7] + p[15]));
    }

    /** {@code sum u l} over elements {@code [from, end)} of a candidate, one fused term at a time. */
    static float restCross(float[] normalized, int from, int end, float step) {
        float sum = 0f;
        for (int i = from; i < end; i++) {
            sum = Math.fma(normalized[i], Nf4Codebook.level(Nf4Codebook.encode(normalized[i] * step)), sum);
        }
        return sum;
    }

    /** {@code sum l l} over elements {@code [from, end)} of a candidate, one fused term at a time. */
    static float restLevels(float[] normalized, int from, int end, float step) {
        float sum = 0f;
        for (int i = from; i < end; i++) {
            float level = Nf4Codebook.level(Nf4Codebook.encode(normalized[i] * step));
            sum = Math.fma(level, level, sum);
        }
        return sum;
    }

    @Override
    public void encode(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                       MemorySegment scales, MemorySegment codes, QuantizationError into) {
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float scale = scales.get(FLOAT, 4 * block);
            encode(src, type, start, 0, length, scale, codes);
            if (into != null) {
                measureBlock(src, type, start, 0, length, scale, codes, into, null, block);
            }
        }
    }

    @Override
    public void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, long count, long firstBlock,
                           long endBlock, MemorySegment dst, FloatType type) {
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            decode(codes, start, 0, length, absmax.get(FLOAT, 4 * block), dst, type);
        }
    }

    @Override
    public void quantizeMeasured(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                 long endBlock, MemorySegment codes, MemorySegment absmax, QuantizationError into,
                                 MemorySegment blockTerms) {
        quantizeBlocks(src, type, count, blockSize, firstBlock, endBlock, codes, absmax, into, blockTerms);
    }

    /**
     * Adds to {@code into} the error of blocks {@code [firstBlock, endBlock)} already quantized into
     * {@code codes} and {@code absmax}, with the terms of {@link #quantizeMeasured} where {@code blockTerms}
     * is not null.
     */
    public void measure(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                        MemorySegment codes, MemorySegment absmax, QuantizationError into, MemorySegment blockTerms) {
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            measureBlock(src, type, start, 0, length, absmax.get(FLOAT, 4 * block), codes, into, blockTerms, block);
        }
    }

    @Override
    public void difference(MemorySegment original, MemorySegment restored, long count, QuantizationError into) {
        differenceOf(original, restored, 0, count, into);
    }

    /**
     * Adds the error of elements {@code [start + from, start + length)} of a block to {@code into}, and
     * where {@code blockTerms} is not null stores that part's terms as block {@code block}'s, or adds them
     * to those stored where {@code from} is not 0.
     */
    static void measureBlock(MemorySegment src, FloatType type, long start, int from, int length, float absmax,
                             MemorySegment codes, QuantizationError into, MemorySegment blockTerms, long block) {
        BlockArrays arrays = BLOCK_ARRAYS.get();
        float[] values = arrays.read(src, type, start + from, length - from);
        MemorySegment.copy(codes, JAVA_BYTE, (start + from) / 2, arrays.codes, 0, (length - from + 1) / 2);
        measure(values, arrays.codes, length - from, absmax, into, blockTerms, block, from == 0);
    }

    /**
     * Adds the error of {@code values[0, length)}, coded as {@code codes} (two to a byte from
     * {@code codes[0]}) in a block of absmax {@code absmax}, to {@code into}: {@code d = x - level * absmax}
     * with the product rounded to float, as dequantize stores it, and every sum in double. Where
     * {@code blockTerms} is not null, stores this part's terms as block {@code block}'s ({@link #storeTerms}).
     */
    private static void measure(float[] values, byte[] codes, int length, float absmax, QuantizationError into,
                                MemorySegment blockTerms, long block, boolean firstPart) {
        double squaredError = 0;
        double squaredSignal = 0;
        double maxError = 0;
        double crossTerm = 0;
        double squaredLevels = 0;
        for (int i = 0; i < length; i++) {
            float level = Nf4Codebook.level((codes[i / 2] >> (4 * (i & 1))) & 0xF);
            double x = values[i];
            double d = x - (level * absmax);
            squaredError += d * d;
            squaredSignal += x * x;
            double size = Math.abs(d);
            if (size > maxError) { // d is finite (so are the inputs): Math.max's NaN and -0 rules cost 15 %
                maxError = size;
            }
            crossTerm += x * level;
            squaredLevels += (double) level * level;
        }
        into.add(length, squaredError, squaredSignal, maxError);
        if (blockTerms != null) {
            storeTerms(blockTerms, block, firstPart, crossTerm, squaredLevels, maxError);
        }
    }

    /**
     * Stores the terms of a block's first part as the block's, and adds those of a later part to them. (The
     * first part's writes read nothing: reading the stored terms before each write, to add to zeros, cost
     * the 512-bit kernels 0.5 ns per element once the terms no longer fitted in L2; BENCHMARKS.md.)
     */
    static void storeTerms(MemorySegment blockTerms, long block, boolean firstPart, double crossTerm,
                           double squaredLevels, double maxError) {
        long at = 12 * block;
        if (!firstPart) {
            crossTerm += blockTerms.get(FLOAT, at);
            squaredLevels += blockTerms.get(FLOAT, at + 4);
            maxError = Math.max(maxError, blockTerms.get(FLOAT, at + 8));
        }
        blockTerms.set(FLOAT, at, (float) crossTerm);
        blockTerms.set(FLOAT, at + 4, (float) squaredLevels);
        blockTerms.set(FLOAT, at + 8, (float) maxError);
    }

    /** Adds the error of F32 elements {@code [from, to)} of {@code restored} against {@code original}. */
    static void differenceOf(MemorySegment original, MemorySegment restored, long from, long to, QuantizationError into) {
        double squaredError = 0;
        double squaredSignal = 0;
        double maxError = 0;
        for (long i = from; i < to; i++) {
            float x = original.getAtIndex(FLOAT, i);
            double d = (double) x - restored.getAtIndex(FLOAT, i);
            squaredError += d * d;
            squaredSignal += (double) x * x;
            maxError = Math.max(maxError, Math.abs(d));
        }
        into.add(to - from, squaredError, squaredSignal, maxError);
    }

    /**
     * Encodes elements {@code [start + from, start + length)} of a block whose first element is
     * {@code start}, given its absmax; {@code from} is even. An absmax of 0 gives code 7 (level 0.0).
     */
    static void encode(MemorySegment src, FloatType type, long start, int from, int length, float absmax,
                       MemorySegment codes) {
        BlockArrays arrays = BLOCK_ARRAYS.get();
        float[] values = arrays.read(src, type, start + from, length - from);
        encode(values, length - from, absmax, arrays.codes);
        MemorySegment.copy(arrays.codes, 0, codes, JAVA_BYTE, (start + from) / 2, (length - from + 1) / 2);
    }

    /**
     * The codes of {@code values[0, length)} given their block's absmax, two to a byte from
     * {@code codes[0]}, element 2k in the low nibble; an odd length leaves the last high nibble 0.
     */
    private static void encode(float[] values, int length, float absmax, byte[] codes) {
        float reciprocal = 1f / absmax;
        for (int i = 0; i < length; i += 2) {
            int low = codeOf(values[i], absmax, reciprocal);
            int high = i + 1 < length ? codeOf(values[i + 1], absmax, reciprocal) : 0;
            codes[i / 2] = (byte) (low | high << 4);
        }
    }

    /** max |x| over {@code values[0, length)}. */
    private static float absmax(float[] values, int length) {
        float max = 0f;
        for (int i = 0; i < length; i++) {
            max = Math.max(max, Math.abs(values[i]));
        }
        return max;
    }

    private static int codeOf(float x, float absmax, float reciprocal) {
        return absmax == 0f ? Nf4Codebook.ZERO_CODE : Nf4Codebook.encode(x * reciprocal);
    }

    /** Decodes elements {@code [start + from, start + length)} of a block; {@code from} is even. */
    static void decode(MemorySegment codes, long start, int from, int length, float absmax, MemorySegment dst,
                       FloatType type) {
        for (int i = from; i < length; i++) {
            int packed = codes.get(JAVA_BYTE, (start + i) / 2);
            int code = (i & 1) == 0 ? packed & 0xF : (packed >>> 4) & 0xF;
            type.write(dst, start + i, Nf4Codebook.level(code) * absmax);
        }
    }

}
