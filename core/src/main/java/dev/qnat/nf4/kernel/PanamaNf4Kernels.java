package dev.qnat.nf4.kernel;

import static jdk.incubator.vector.VectorOperators.ADD;
import static jdk.incubator.vector.VectorOperators.B2I;
import static jdk.incubator.vector.VectorOperators.GT;
import static jdk.incubator.vector.VectorOperators.I2B;
import static jdk.incubator.vector.VectorOperators.I2F;
import static jdk.incubator.vector.VectorOperators.I2S;
import static jdk.incubator.vector.VectorOperators.L2B;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.LT;
import static jdk.incubator.vector.VectorOperators.MAX;
import static jdk.incubator.vector.VectorOperators.NE;
import static jdk.incubator.vector.VectorOperators.S2I;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.nf4.QuantizationError;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * NF4 kernels on the Panama Vector API, bit-exact with {@link ScalarNf4Kernels} at every width.
 *
 * <p>The width is fixed when the class loads: {@value #WIDTH_PROPERTY} (128, 256 or 512) or the
 * platform's preferred width, capped at 512. One vector of LANES floats makes LANES / 2 code bytes,
 * moved as one 16-, 32- or 64-bit scalar. absmax is a maximum of magnitude bits on integer lanes, the
 * code a branch-free binary search that compares {@code x * (1 / absmax)} with the thresholds as floats,
 * and the codebook is read by a 16-entry lane lookup of level bits. The only float arithmetic is
 * {@code x * (1 / absmax)} and {@code level * absmax}, as in the scalar rules, so the results agree bit
 * for bit. What does not fill a vector, and blocks
 * whose {@code 1 / absmax} is infinite, go through the scalar helpers.
 */
final class PanamaNf4Kernels implements Nf4Kernels {
    static final String WIDTH_PROPERTY = "qnat.vector.bits";

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort CODE_BYTES_2 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfInt CODE_BYTES_4 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfLong CODE_BYTES_8 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);

    private static final int BITS = chooseBits();
    private static final VectorSpecies<Float> FLOATS = VectorSpecies.of(float.class, VectorShape.forBitSize(BITS));
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, VectorShape.forBitSize(BITS));
    private static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(BITS));
    /** Half-width shorts: as many lanes as {@link #INTS}, for F16/BF16 loads and stores. */
    private static final VectorSpecies<Short> HALF_SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(BITS / 2));

    private static final int LANES = INTS.length();
    private static final int TABLE_SIZE = Nf4Codebook.LEVELS;

    /** Level bit patterns, and thresholds as order keys; padded to whole vectors. */
    private static final int[] LEVEL_TABLE = intTable(Nf4Codebook.levels());
    private static final float[] THRESHOLDS = Nf4Codebook.midpoints();
    /** The thresholds the search's third and fourth steps look up, as float bits, padded to whole vectors. */
    private static final int[] QUARTER_THRESHOLDS = everyNth(THRESHOLDS, 1, 4);
    private static final int[] EIGHTH_THRESHOLDS = everyNth(THRESHOLDS, 0, 2);
    /** All 15 thresholds as float bits, for lookups by code (the MSE search's code updates). */
    private static final int[] THRESHOLD_TABLE = intTable(THRESHOLDS);
    /**
     * Entry i: the level of code i + 1 (the MSE search's upper level), for a lookup by the same index
     * (entry 15 is never looked up).
     */
    private static final int[] LEVEL_ABOVE_TABLE = intTable(Arrays.copyOfRange(Nf4Codebook.levels(), 1, TABLE_SIZE));
    /** Per lane: the shift of its nibble in its 32-bit half of the code bytes, and which half (0 or 1). */
    private static final int[] NIBBLE_SHIFT = new int[LANES];
    private static final int[] IN_HIGH_HALF = new int[LANES];

    private static final float HALF_SUBNORMAL_UNIT = 0x1p-24f;

    /** Lane j takes lane j + n (wrapping; the lanes that wrap are not used): sumOfLanes' folds. */
    private static final VectorShuffle<Float> UP_8 = VectorShuffle.iota(FLOATS, 8, 1, true);
    private static final VectorShuffle<Float> UP_4 = VectorShuffle.iota(FLOATS, 4, 1, true);
    private static final VectorShuffle<Float> UP_2 = VectorShuffle.iota(FLOATS, 2, 1, true);
    private static final VectorShuffle<Float> UP_1 = VectorShuffle.iota(FLOATS, 1, 1, true);

    static {
        for (int lane = 0; lane < LANES; lane++) {
            NIBBLE_SHIFT[lane] = 4 * lane % 32;
            IN_HIGH_HALF[lane] = lane / 8;
        }
    }

    static final PanamaNf4Kernels INSTANCE = new PanamaNf4Kernels();

    private PanamaNf4Kernels() {}

    private static int chooseBits() {
        String forced = System.getProperty(WIDTH_PROPERTY, "").strip();
        int bits = forced.isEmpty() ? Math.min(FloatVector.SPECIES_PREFERRED.vectorBitSize(), 512)
                : forced.matches("\\d{1,4}") ? Integer.parseInt(forced) : -1;
        if (bits != 128 && bits != 256 && bits != 512) {
            throw new UnsupportedOperationException(forced.isEmpty()
                    ? "the platform's vectors are " + bits + " bits wide, under 128"
                    : WIDTH_PROPERTY + "=" + forced + " is not 128, 256, 512 or scalar");
        }
        return bits;
    }

    /** Float bits of values[first], values[first + step], ..., padded with zeros to at least LANES entries. */
    private static int[] everyNth(float[] values, int first, int step) {
        int[] table = new int[Math.max(LANES, 8)];
        for (int i = 0, at = first; at < values.length; i++, at += step) {
            table[i] = Float.floatToRawIntBits(values[at]);
        }
        return table;
    }

    private static int[] intTable(float[] values) {
        int[] table = new int[Math.max(TABLE_SIZE, LANES)];
        for (int i = 0; i < values.length; i++) {
            table[i] = Float.floatToRawIntBits(values[i]);
        }
        return table;
    }

    @Override
    public String name() {
        return "panama-" + BITS;
    }

    // ---- finiteness -------------------------------------------------------------------------------

    @Override
    public long firstNonFinite(MemorySegment src, FloatType type, long from, long to) {
        long i = from;
        if (type == FloatType.F32) {
            for (long end = to - INTS.length(); i <= end; i += INTS.length()) {
                IntVector magnitude = IntVector.fromMemorySegment(INTS, src, 4 * i, LE).and(0x7FFFFFFF);
                if (magnitude.compare(GT, 0x7F7FFFFF).anyTrue()) {
                    break;
                }
            }
        } else {
            short largestFinite = (short) (type == FloatType.F16 ? 0x7BFF : 0x7F7F);
            for (long end = to - SHORTS.length(); i <= end; i += SHORTS.length()) {
                ShortVector magnitude = ShortVector.fromMemorySegment(SHORTS, src, 2 * i, LE).and((short) 0x7FFF);
                if (magnitude.compare(GT, largestFinite).anyTrue()) {
                    break;
                }
            }
        }
        return ScalarNf4Kernels.INSTANCE.firstNonFinite(src, type, i, to);
    }

    // ---- quantize ---------------------------------------------------------------------------------

    /**
     * Elements one call of a block kernel covers at most. One call over tens of MB runs as on-stack
     * replacement code for most of its profile, and C2 then sometimes compiled the BF16 kernel in a form
     * that ran 2.3x slower (JMH `quantizeBlocks` at 64 Mi, BF16, 512 bits: 1.1-1.2 ns per element in 3 of 8
     * forks, 0.50 in the others; always 0.38-0.49 at 4 Mi; BENCHMARKS.md).
     */
    private static final long CALL_ELEMENTS = 1 << 16;

    @Override
    public void quantize(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                         long endBlock, MemorySegment codes, MemorySegment absmax) {
        if (type != FloatType.F32 && LANES >= 8) {
            long blocksPerCall = Math.max(1, CALL_ELEMENTS / blockSize);
            for (long first = firstBlock; first < endBlock; first += blocksPerCall) {
                quantizeHalves(src, type, count, blockSize, first, Math.min(endBlock, first + blocksPerCall), codes,
                        absmax);
            }
            return;
        }
        IntVector quarters = IntVector.fromArray(INTS, QUARTER_THRESHOLDS, 0);
        IntVector eighths = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, 0);
        IntVector eighthsHigh = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, Math.min(LANES, 8) % 8);
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float blockAbsmax = absmax(src, type, start, length);
            absmax.set(ScalarNf4Kernels.FLOAT, 4 * block, blockAbsmax);
            float reciprocal = 1f / blockAbsmax;
            int done = 0;
            // Where 1 / absmax is infinite (absmax 0, or under 2^-128) the scalar rules take the block. (Not a
            // call of encodeBlock: that read 7 to 13 % slower in three alternated JMH runs at 64 Mi F32, near
            // this machine's noise, so the loop stays as it was measured.)
            if (reciprocal != Float.POSITIVE_INFINITY) {
                FloatVector scale = FloatVector.broadcast(FLOATS, reciprocal);
                for (int end = length - LANES; done <= end; done += LANES) {
                    encode(src, type, start + done, scale, codes, quarters, eighths, eighthsHigh);
                }
            }
            if (done < length) {
                ScalarNf4Kernels.encode(src, type, start, done, length, blockAbsmax, codes);
            }
        }
    }

    @Override
    public void encode(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                       MemorySegment scales, MemorySegment codes, QuantizationError into) {
        IntVector quarters = IntVector.fromArray(INTS, QUARTER_THRESHOLDS, 0);
        IntVector eighths = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, 0);
        IntVector eighthsHigh = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, Math.min(LANES, 8) % 8);
        long blocksPerChunk = Math.max(1, MEASURED_CHUNK_ELEMENTS / blockSize);
        for (long first = firstBlock; first < endBlock; first += blocksPerChunk) {
            long end = Math.min(endBlock, first + blocksPerChunk);
            for (long block = first; block < end; block++) {
                long start = block * blockSize;
                encodeBlock(src, type, start, (int) Math.min(blockSize, count - start),
                        scales.get(ScalarNf4Kernels.FLOAT, 4 * block), codes, quarters, eighths, eighthsHigh);
            }
            if (into != null) {
                measure(src, type, count, blockSize, first, end, codes, scales, into, null);
            }
        }
    }

    /** Code bytes that one BF16 or F16 step writes: LANES, for 2 * LANES elements. */
    private static final VectorSpecies<Byte> PAIR_CODE_BYTES = VectorSpecies.of(byte.class,
            VectorShape.forBitSize(Math.max(64, 8 * LANES)));

    /**
     * {@link #quantize} for BF16 and F16, 2 * LANES elements a step from one load of int lanes: lane i holds
     * element 2i in its low half and 2i + 1 in its high half, so for BF16 {@code lane << 16} and
     * {@code lane & 0xFFFF0000} are their float bits, and code byte i is {@code code(2i) | code(2i + 1) << 4},
     * one narrowing store. F16's absmax is the largest binary16 magnitude, converted once (the conversion
     * is exact and keeps the order). The same values, thresholds and maxima as the element-order path, so
     * the same bytes. (The element-order path widens each half of the shorts with a sign extension and a
     * shift, twice per element, and packs by longs.)
     */
    private static void quantizeHalves(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                       long endBlock, MemorySegment codes, MemorySegment absmax) {
        boolean bf16 = type == FloatType.BF16;
        IntVector quarters = IntVector.fromArray(INTS, QUARTER_THRESHOLDS, 0);
        IntVector eighths = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, 0);
        IntVector eighthsHigh = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, Math.min(LANES, 8) % 8);
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            IntVector max = IntVector.zero(INTS);
            int i = 0;
            for (int end = length - 2 * LANES; i <= end; i += 2 * LANES) {
                IntVector pairs = IntVector.fromMemorySegment(INTS, src, 2 * (start + i), LE);
                max = bf16 ? max.max(pairs.and(0x7FFF0000)).max(pairs.lanewise(LSHL, 16).and(0x7FFFFFFF))
                        : max.max(pairs.and(0x7FFF)).max(pairs.lanewise(LSHR, 16).and(0x7FFF));
            }
            int largest = max.reduceLanes(MAX);
            float blockAbsmax = bf16 ? Float.intBitsToFloat(largest) : Float.float16ToFloat((short) largest);
            for (; i < length; i++) {
                blockAbsmax = Math.max(blockAbsmax, Math.abs(type.read(src, start + i)));
            }
            absmax.set(ScalarNf4Kernels.FLOAT, 4 * block, blockAbsmax);
            float reciprocal = 1f / blockAbsmax;
            int done = 0;
            if (reciprocal != Float.POSITIVE_INFINITY) {
                FloatVector scale = FloatVector.broadcast(FLOATS, reciprocal);
                for (int end = length - 2 * LANES; done <= end; done += 2 * LANES) {
                    long index = start + done;
                    IntVector pairs = IntVector.fromMemorySegment(INTS, src, 2 * index, LE);
                    IntVector even = search(pairHalf(pairs, bf16, 0).reinterpretAsFloats().mul(scale), quarters, eighths,
                            eighthsHigh);
                    IntVector odd = search(pairHalf(pairs, bf16, 1).reinterpretAsFloats().mul(scale), quarters, eighths,
                            eighthsHigh);
                    odd.lanewise(LSHL, 4).or(even).convertShape(I2B, PAIR_CODE_BYTES, 0)
                            .intoMemorySegment(codes, codeByte(index), LE);
                }
            }
            if (done < length) {
                ScalarNf4Kernels.encode(src, type, start, done, length, blockAbsmax, codes);
            }
        }
    }

    /**
     * The float bits of the even ({@code half} 0) or odd (1) elements of BF16 or F16 pairs read as int lanes:
     * lane i holds element 2i in its low 16 bits and 2i + 1 in its high ones.
     */
    private static IntVector pairHalf(IntVector pairs, boolean bf16, int half) {
        return half == 0 ? (bf16 ? pairs.lanewise(LSHL, 16) : f16ToFloatBits(pairs))
                : (bf16 ? pairs.and(0xFFFF0000) : f16ToFloatBits(pairs.lanewise(LSHR, 16)));
    }

    /** Encodes one block against {@code scale}: whole vectors here, the rest (and scales whose reciprocal is infinite) by the scalar rules. */
    private static void encodeBlock(MemorySegment src, FloatType type, long start, int length, float scale,
                                    MemorySegment codes, IntVector quarters, IntVector eighths, IntVector eighthsHigh) {
        float reciprocal = 1f / scale;
        int done = 0;
        if (Math.abs(reciprocal) != Float.POSITIVE_INFINITY) {
            FloatVector unscale = FloatVector.broadcast(FLOATS, reciprocal);
            for (int end = length - LANES; done <= end; done += LANES) {
                encode(src, type, start + done, unscale, codes, quarters, eighths, eighthsHigh);
            }
        }
        if (done < length) {
            ScalarNf4Kernels.encode(src, type, start, done, length, scale, codes);
        }
    }

    // ---- MSE scales -------------------------------------------------------------------------------

    /** Elements whose MSE scales are chosen together: one candidate runs over all their blocks in turn. */
    private static final int MSE_CHUNK_ELEMENTS = 1 << 12;

    /**
     * Per thread: a chunk in absmax units, each element's threshold and two levels (candidateBounds), its
     * blocks' absmax and each candidate's sums; grown as needed.
     */
    private static final ThreadLocal<MseScratch> MSE_SCRATCH = ThreadLocal.withInitial(MseScratch::new);

    private static final class MseScratch {
        // One vector more than a chunk: candidateBounds runs whole vectors past the chunk's last element.
        float[] normalized = new float[MSE_CHUNK_ELEMENTS + LANES];
        int[] indexes = new int[MSE_CHUNK_ELEMENTS + LANES];
        float[] thresholds = new float[MSE_CHUNK_ELEMENTS + LANES];
        float[] lowLevels = new float[MSE_CHUNK_ELEMENTS + LANES];
        float[] highLevels = new float[MSE_CHUNK_ELEMENTS + LANES];
        float[] absmax = new float[MSE_CHUNK_ELEMENTS / 2];
        float[] cross = new float[MseScaleRule.CANDIDATES * MSE_CHUNK_ELEMENTS / 2];
        float[] levels = new float[MseScaleRule.CANDIDATES * MSE_CHUNK_ELEMENTS / 2];

        MseScratch fit(int elements) {
            if (normalized.length < elements + LANES) {
                normalized = new float[elements + LANES];
                indexes = new int[elements + LANES];
                thresholds = new float[elements + LANES];
                lowLevels = new float[elements + LANES];
                highLevels = new float[elements + LANES];
            }
            return this;
        }
    }

    /**
     * The MSE rule per block (MseScaleRule), a chunk of blocks at a time: the chunk in absmax units goes to a
     * heap array, then each candidate runs over every block of it, as 16 / LANES vectors per group of 16
     * elements whose lanes hold the 16 partial sums by index mod 16 of the scalar rule, so every width forms
     * the same sums; then each block takes its best candidate. (One block at a time, all candidates for it
     * before the next, ran 7.4 ns per element: each candidate's sums, tree and score made a chain of
     * dependent steps that the core could not overlap with the next.)
     */
    @Override
    public void mseScales(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                          long endBlock, MemorySegment scales) {
        IntVector quarters = IntVector.fromArray(INTS, QUARTER_THRESHOLDS, 0);
        IntVector eighths = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, 0);
        IntVector eighthsHigh = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, Math.min(LANES, 8) % 8);
        int blocksPerChunk = Math.max(1, MSE_CHUNK_ELEMENTS / blockSize);
        MseScratch scratch = MSE_SCRATCH.get().fit(blocksPerChunk * blockSize);
        for (long first = firstBlock; first < endBlock; first += blocksPerChunk) {
            int blocks = (int) Math.min(blocksPerChunk, endBlock - first);
            int elements = (int) (Math.min(count, (first + blocks) * blockSize) - first * blockSize);
            for (int b = 0; b < blocks; b++) {
                long start = (first + b) * blockSize;
                int length = (int) Math.min(blockSize, count - start);
                float blockAbsmax = absmax(src, type, start, length);
                scratch.absmax[b] = blockAbsmax;
                if (MseScaleRule.searches(blockAbsmax)) {
                    normalize(src, type, start, length, 1f / blockAbsmax, scratch.normalized, b * blockSize);
                }
            }
            candidateBounds(scratch, elements, quarters, eighths, eighthsHigh);
            for (int k = 0; k < MseScaleRule.CANDIDATES; k++) {
                candidateSums(scratch, blockSize, elements, MseScaleRule.STEPS[k], k * blocks);
            }
            for (int b = 0; b < blocks; b++) {
                float blockAbsmax = scratch.absmax[b];
                scales.set(ScalarNf4Kernels.FLOAT, 4 * (first + b), MseScaleRule.searches(blockAbsmax)
                        ? MseScaleRule.choose(blockAbsmax, scratch.cross, scratch.levels, b, blocks) : blockAbsmax);
            }
        }
    }

    /**
     * For each element of the whole groups of 16 of each block of a chunk: the one threshold that can part
     * its codes over all candidates, and the levels of the codes on either side. Candidates come in
     * decreasing steps from 20 / 18 to 20 / 22, so {@code v = u * step} keeps its sign and its magnitude
     * falls by a factor of at most 22 / 18 = 1.22 in all, while neighbouring thresholds on either side of 0
     * are at least 1.28 times apart: v crosses at most one threshold over all candidates
     * (MseScaleRuleTest checks the constants). With {@code c} the first candidate's code by the full
     * search and {@code i = c - (u > 0)}, candidate k's code is {@code i + (v_k > t[i])}: the codes below
     * a positive v only fall, those of a negative one only rise, and for the first candidate it is c.
     */
    private static void candidateBounds(MseScratch scratch, int elements, IntVector quarters, IntVector eighths,
                                        IntVector eighthsHigh) {
        // Element by element, so over the whole chunk in whole vectors, whatever the blocks (values past the
        // searched blocks' elements are left from before and their results unused). The search in one loop,
        // the lookups in another: both in one body passed C2's node budget and boxed the vectors (40 bytes
        // per element). C2 calls this method out of line, so the 3 vectors passed in are boxed once per
        // chunk (0.09 bytes per element); passing the lookup tables too boxed 11 (0.22 bytes), and loading
        // all of them here, not in lookupBounds, boxed them per vector (16 bytes per element, 1.5x slower).
        FloatVector firstStep = FloatVector.broadcast(FLOATS, MseScaleRule.STEPS[0]);
        for (int i = 0; i < elements; i += LANES) {
            FloatVector u = FloatVector.fromArray(FLOATS, scratch.normalized, i);
            search(u.mul(firstStep), quarters, eighths, eighthsHigh).sub(1, u.compare(GT, 0f).cast(INTS))
                    .intoArray(scratch.indexes, i);
        }
        lookupBounds(scratch, elements);
    }

    /**
     * For each index i of the chunk: threshold i, and the levels of codes i and i + 1. The three tables
     * split at the same index, so one mask serves all three lookups. (Three loops of one lookup each, the
     * second by i + 1 in the level table, ran the MSE quantize 4.5 % slower, F32 and BF16.)
     */
    private static void lookupBounds(MseScratch scratch, int elements) {
        IntVector m0 = tablePart(THRESHOLD_TABLE, 0);
        IntVector m1 = tablePart(THRESHOLD_TABLE, 1);
        IntVector m2 = tablePart(THRESHOLD_TABLE, 2);
        IntVector m3 = tablePart(THRESHOLD_TABLE, 3);
        IntVector t0 = tablePart(LEVEL_TABLE, 0);
        IntVector t1 = tablePart(LEVEL_TABLE, 1);
        IntVector t2 = tablePart(LEVEL_TABLE, 2);
        IntVector t3 = tablePart(LEVEL_TABLE, 3);
        IntVector a0 = tablePart(LEVEL_ABOVE_TABLE, 0);
        IntVector a1 = tablePart(LEVEL_ABOVE_TABLE, 1);
        IntVector a2 = tablePart(LEVEL_ABOVE_TABLE, 2);
        IntVector a3 = tablePart(LEVEL_ABOVE_TABLE, 3);
        for (int i = 0; i < elements; i += LANES) {
            IntVector index = IntVector.fromArray(INTS, scratch.indexes, i);
            VectorMask<Integer> upper = index.compare(GT, 7);
            lookup(index, upper, m0, m1, m2, m3).reinterpretAsFloats().intoArray(scratch.thresholds, i);
            lookup(index, upper, t0, t1, t2, t3).reinterpretAsFloats().intoArray(scratch.lowLevels, i);
            lookup(index, upper, a0, a1, a2, a3).reinterpretAsFloats().intoArray(scratch.highLevels, i);
        }
    }

    /**
     * One candidate's {@code sum u l} and {@code sum l l} for each block of a chunk (blocks that keep their
     * absmax too; their sums go unused), into the scratch's sums from {@code at}. Each level is one of the
     * element's two (candidateBounds): a compare and a blend, no lookup. (A full threshold search per
     * candidate ran the whole call at 6.9 ns per element, 256 Ki F32; updating the previous candidate's
     * codes with a threshold and a level lookup, 6.35.)
     *
     * <p>Within a block, vector k adds into the partial sums of {@code k mod (16 / LANES)}: the accumulators
     * rotate after each vector, so that the loop body is written once. (Four copies of the body at 128 bits,
     * two at 256, passed C2's node budget (NodeCountInliningCutoff): the helpers were called out of line
     * with their vectors boxed, 150 bytes allocated per element.)
     */
    private static void candidateSums(MseScratch scratch, int blockSize, int elements, float step, int at) {
        FloatVector stepVector = FloatVector.broadcast(FLOATS, step);
        for (int from = 0, b = at; from < elements; from += blockSize, b++) {
            int end = Math.min(elements, from + blockSize);
            int groupedEnd = end - (end - from) % MseScaleRule.GROUP;
            // cross0/levels0 take the next vector; cross3/levels3 the oldest partial sums (16 / LANES in use).
            FloatVector cross0 = FloatVector.zero(FLOATS);
            FloatVector cross1 = cross0;
            FloatVector cross2 = cross0;
            FloatVector cross3 = cross0;
            FloatVector levels0 = cross0;
            FloatVector levels1 = cross0;
            FloatVector levels2 = cross0;
            FloatVector levels3 = cross0;
            for (int i = from; i < groupedEnd; i += LANES) {
                FloatVector u = FloatVector.fromArray(FLOATS, scratch.normalized, i);
                VectorMask<Float> upper = u.mul(stepVector)
                        .compare(GT, FloatVector.fromArray(FLOATS, scratch.thresholds, i));
                FloatVector level = FloatVector.fromArray(FLOATS, scratch.lowLevels, i)
                        .blend(FloatVector.fromArray(FLOATS, scratch.highLevels, i), upper);
                FloatVector crossSums = u.fma(level, sameLanes(cross0, cross1, cross3));
                FloatVector levelSums = level.fma(level, sameLanes(levels0, levels1, levels3));
                cross3 = cross2;
                cross2 = cross1;
                cross1 = cross0;
                cross0 = crossSums;
                levels3 = levels2;
                levels2 = levels1;
                levels1 = levels0;
                levels0 = levelSums;
            }
            scratch.cross[b] = rotatedTree(cross0, cross1, cross2, cross3)
                    + ScalarNf4Kernels.restCross(scratch.normalized, groupedEnd, end, step);
            scratch.levels[b] = rotatedTree(levels0, levels1, levels2, levels3)
                    + ScalarNf4Kernels.restLevels(scratch.normalized, groupedEnd, end, step);
        }
    }

    /** Of the rotating accumulators (newest first), the one whose lanes hold the next vector's partial sums. */
    private static FloatVector sameLanes(FloatVector newest, FloatVector second, FloatVector fourth) {
        return LANES == 16 ? newest : LANES == 8 ? second : fourth;
    }

    /** The sum of the partial sums in rotating accumulators (newest first) after a whole number of groups. */
    private static float rotatedTree(FloatVector newest, FloatVector second, FloatVector third, FloatVector fourth) {
        return LANES == 16 ? tree(newest, null, null, null)
                : LANES == 8 ? tree(second, newest, null, null) : tree(fourth, third, second, newest);
    }

    /** {@code u = x * reciprocal} of a block's elements into {@code normalized} from {@code at}, as the scalar rule forms it. */
    private static void normalize(MemorySegment src, FloatType type, long start, int length, float reciprocal,
                                  float[] normalized, int at) {
        FloatVector unscale = FloatVector.broadcast(FLOATS, reciprocal);
        int i = 0;
        for (int end = length - LANES; i <= end; i += LANES) {
            loadBits(src, type, start + i).reinterpretAsFloats().mul(unscale).intoArray(normalized, at + i);
        }
        ScalarNf4Kernels.normalize(src, type, start, i, length, reciprocal, normalized, at);
    }

    /**
     * One candidate's sum from its 16 partial sums, held as lanes of 16 / LANES vectors in index order
     * (vectors past those unused), in MseScaleRule's order: {@code h_j = p_j + p_(j+8)}, then
     * {@code q_j = h_j + h_(j+4)}, then {@code (q0 + q2) + (q1 + q3)} ({@link MseScaleRule#tree}): the
     * vectors added lane by lane down to one, then {@link #sumOfLanes}.
     */
    private static float tree(FloatVector p0, FloatVector p1, FloatVector p2, FloatVector p3) {
        return sumOfLanes(LANES == 16 ? p0 : LANES == 8 ? p0.add(p1) : p0.add(p2).add(p1.add(p3)));
    }

    /**
     * The sum of the lanes as a fixed tree: lane j plus lane j + LANES / 2, then + LANES / 4, and so on
     * (constant lane permutes), then lane 0. reduceLanes(ADD) leaves its order open; and reading the lanes
     * out one by one, 16 at 512 bits, made the MSE search 3 to 20 % slower at 512 bits than at 256 on an
     * AVX-512 EPYC. (The measuring pass keeps reduceLanes, whose order it need not fix: this in its place,
     * five times, passed C2's inlining budget there and ran 3x slower.)
     */
    private static float sumOfLanes(FloatVector v) {
        if (LANES == 16) {
            v = v.add(v.rearrange(UP_8));
        }
        if (LANES >= 8) {
            v = v.add(v.rearrange(UP_4));
        }
        v = v.add(v.rearrange(UP_2));
        return v.add(v.rearrange(UP_1)).lane(0);
    }

    private static float absmax(MemorySegment src, FloatType type, long start, int length) {
        // Magnitude bits order like magnitudes, and an integer max is one instruction where Math.max on
        // floats is several (NaN and -0.0 rules); the input was checked finite before.
        IntVector max = IntVector.zero(INTS);
        int i = 0;
        for (int end = length - LANES; i <= end; i += LANES) {
            max = max.max(loadBits(src, type, start + i).and(0x7FFFFFFF));
        }
        float result = Float.intBitsToFloat(max.reduceLanes(MAX));
        for (; i < length; i++) {
            result = Math.max(result, Math.abs(type.read(src, start + i)));
        }
        return result;
    }

    /** Encodes LANES elements from {@code index} (even) into LANES / 2 code bytes. */
    private static void encode(MemorySegment src, FloatType type, long index, FloatVector reciprocal,
                               MemorySegment codes, IntVector quarters, IntVector eighths, IntVector eighthsHigh) {
        FloatVector v = loadBits(src, type, index).reinterpretAsFloats().mul(reciprocal);
        IntVector code = search(v, quarters, eighths, eighthsHigh);
        // Neighbouring codes seen as one long: the low byte of (pair | pair >>> 28) is lo | hi << 4.
        LongVector pairs = code.reinterpretAsLongs();
        ByteVector packed = (ByteVector) pairs.or(pairs.lanewise(LSHR, 28)).convert(L2B, 0);
        switch (LANES) {
            case 4 -> codes.set(CODE_BYTES_2, codeByte(index), packed.reinterpretAsShorts().lane(0));
            case 8 -> codes.set(CODE_BYTES_4, codeByte(index), packed.reinterpretAsInts().lane(0));
            default -> codes.set(CODE_BYTES_8, codeByte(index), packed.reinterpretAsLongs().lane(0));
        }
    }

    /**
     * The number of thresholds strictly below each value: four halving steps over the 15 sorted
     * thresholds t, compared as floats (the scalar rule's comparison, exact for every non-NaN value).
     * After the first step the code is 0 or 8 and the next threshold t3 or t11, a blend; then it is a
     * multiple of 4 (next t1, t5, t9 or t13, by code / 4) and of 2 (next t0, t2, ..., t14, by code / 2):
     * lookups in tables of 4 and 8 entries, one lane permute each from 256 bits up. (One 16-entry table
     * of order keys for all steps took two permutes and a blend per step at 256 bits: F32 out of cache
     * ran 1.98 ns per element against 0.97 now, BF16 2.04 against 1.44, medians of three JMH runs.)
     */
    private static IntVector search(FloatVector v, IntVector quarters, IntVector eighths, IntVector eighthsHigh) {
        VectorMask<Float> upperHalf = v.compare(GT, THRESHOLDS[7]);
        IntVector code = IntVector.zero(INTS).blend(8, upperHalf.cast(INTS));
        FloatVector threshold = FloatVector.broadcast(FLOATS, THRESHOLDS[3]).blend(THRESHOLDS[11], upperHalf);
        code = code.add(4, v.compare(GT, threshold).cast(INTS));
        threshold = code.lanewise(LSHR, 2).selectFrom(quarters).reinterpretAsFloats();
        code = code.add(2, v.compare(GT, threshold).cast(INTS));
        IntVector eighth = code.lanewise(LSHR, 1);
        threshold = (LANES >= 8 ? eighth.selectFrom(eighths) : eighth.selectFrom(eighths, eighthsHigh))
                .reinterpretAsFloats();
        return code.add(1, v.compare(GT, threshold).cast(INTS));
    }

    // ---- dequantize -------------------------------------------------------------------------------

    @Override
    public void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, long count, long firstBlock,
                           long endBlock, MemorySegment dst, FloatType type) {
        if (type == FloatType.BF16) {
            dequantizeToBf16(codes, absmax, blockSize, count, firstBlock, endBlock, dst);
            return;
        }
        IntVector t0 = tablePart(LEVEL_TABLE, 0);
        IntVector t1 = tablePart(LEVEL_TABLE, 1);
        IntVector t2 = tablePart(LEVEL_TABLE, 2);
        IntVector t3 = tablePart(LEVEL_TABLE, 3);
        IntVector nibbleShift = IntVector.fromArray(INTS, NIBBLE_SHIFT, 0);
        VectorMask<Integer> inHighHalf = IntVector.fromArray(INTS, IN_HIGH_HALF, 0).compare(NE, 0);
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float blockAbsmax = absmax.get(ScalarNf4Kernels.FLOAT, 4 * block);
            FloatVector scale = FloatVector.broadcast(FLOATS, blockAbsmax);
            int done = 0;
            for (int end = length - LANES; done <= end; done += LANES) {
                long index = start + done;
                IntVector code = unpack(codes, codeByte(index), nibbleShift, inHighHalf);
                FloatVector level = lookup(code, t0, t1, t2, t3).reinterpretAsFloats();
                store(dst, type, index, level.mul(scale));
            }
            if (done < length) {
                ScalarNf4Kernels.decode(codes, start, done, length, blockAbsmax, dst, type);
            }
        }
    }

    /** The LANES codes in the LANES / 2 bytes at {@code offset}, one per int lane, in element order. */
    private static IntVector unpack(MemorySegment codes, long offset, IntVector nibbleShift,
                                    VectorMask<Integer> inHighHalf) {
        // Element e of the bytes read as a little-endian number sits at bits 4e to 4e + 3.
        IntVector halves = switch (LANES) {
            case 4 -> IntVector.broadcast(INTS, codes.get(CODE_BYTES_2, offset));
            case 8 -> IntVector.broadcast(INTS, codes.get(CODE_BYTES_4, offset));
            default -> {
                long bytes = codes.get(CODE_BYTES_8, offset);
                yield IntVector.broadcast(INTS, (int) bytes).blend((int) (bytes >>> 32), inHighHalf);
            }
        };
        return halves.lanewise(LSHR, nibbleShift).and(0xF);
    }

    /** Code bytes one BF16 step reads: LANES, as a byte vector of at least 64 bits. */
    private static final VectorSpecies<Byte> CODE_BYTES =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, 8 * LANES)));

    /**
     * Dequantize to BF16, 2 * LANES elements a step: lane j takes code byte j, whose low nibble is element
     * 2j and high nibble element 2j + 1, so the two rounded halves fit one int lane each in element order,
     * stored as one vector with no narrowing. Blocks whose absmax is not finite (a NaN must stay a quiet
     * NaN) and what does not fill a step go to the scalar rules.
     */
    private static void dequantizeToBf16(MemorySegment codes, MemorySegment absmax, int blockSize, long count,
                                         long firstBlock, long endBlock, MemorySegment dst) {
        IntVector t0 = tablePart(LEVEL_TABLE, 0);
        IntVector t1 = tablePart(LEVEL_TABLE, 1);
        IntVector t2 = tablePart(LEVEL_TABLE, 2);
        IntVector t3 = tablePart(LEVEL_TABLE, 3);
        long codeBytes = codes.byteSize();
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float blockAbsmax = absmax.get(ScalarNf4Kernels.FLOAT, 4 * block);
            int done = 0;
            if (Float.isFinite(blockAbsmax)) {
                FloatVector scale = FloatVector.broadcast(FLOATS, blockAbsmax);
                for (int end = length - 2 * LANES; done <= end && codeByte(start + done) + CODE_BYTES.length() <= codeBytes;
                     done += 2 * LANES) {
                    long index = start + done;
                    IntVector pairs = (IntVector) ByteVector.fromMemorySegment(CODE_BYTES, codes, codeByte(index), LE)
                            .convertShape(B2I, INTS, 0);
                    IntVector even = bf16Rounded(lookup(pairs.and(0xF), t0, t1, t2, t3), scale);
                    IntVector odd = bf16Rounded(lookup(pairs.lanewise(LSHR, 4).and(0xF), t0, t1, t2, t3), scale);
                    even.lanewise(LSHR, 16).or(odd.and(0xFFFF0000)).intoMemorySegment(dst, 2 * index, LE);
                }
            }
            if (done < length) {
                ScalarNf4Kernels.decode(codes, start, done, length, blockAbsmax, dst, FloatType.BF16);
            }
        }
    }

    /** {@code level * scale} rounded to BF16 (nearest even) in the high 16 bits; finite values only. */
    private static IntVector bf16Rounded(IntVector levelBits, FloatVector scale) {
        return bf16InHighHalf(levelBits.reinterpretAsFloats().mul(scale).reinterpretAsInts());
    }

    /** Float bits rounded to BF16, nearest even, in the high 16 bits (the low ones are left over); not NaN. */
    private static IntVector bf16InHighHalf(IntVector bits) {
        return bits.add(0x7FFF).add(bits.lanewise(LSHR, 16).and(1));
    }

    // ---- error ------------------------------------------------------------------------------------

    /** Float lanes sum at most this many vectors before they are reduced into doubles. */
    private static final int VECTORS_PER_FLUSH = 8;

    /** Elements quantized, then measured, at a time: 16 KiB of F32, still in L1 when measured. */
    private static final int MEASURED_CHUNK_ELEMENTS = 1 << 12;

    /**
     * Quantizes a chunk of blocks, then measures it while it is in L1; BF16 at 8 lanes or more in one loop
     * that measures each step as it encodes it (quantizeHalvesMeasured), after a pass for the chunk's
     * maxima. One fused loop over everything passed C2's node budget (NodeCountInliningCutoff): helpers
     * taking vectors were then called out of line with their vectors boxed, 5 ns per element instead of
     * 1.7 (F32, AVX2) and 3.8 instead of 0.78 (BF16, 512 bits); with the maxima in their own method and the
     * level lookup and magnitude written out, the BF16 loop inlines completely. (Widening F16 and BF16
     * chunks to F32 first, so that one measuring loop served all types, made the plain BF16 quantize twice
     * as slow: it then saw two input types.)
     */
    @Override
    public void quantizeMeasured(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                 long endBlock, MemorySegment codes, MemorySegment absmax, QuantizationError into,
                                 MemorySegment blockTerms) {
        if (type == FloatType.BF16 && LANES >= 8) {
            long blocksPerChunk = Math.max(1, MEASURED_CHUNK_ELEMENTS / blockSize);
            for (long first = firstBlock; first < endBlock; first += blocksPerChunk) {
                long end = Math.min(endBlock, first + blocksPerChunk);
                bf16Maxima(src, count, blockSize, first, end, absmax);
                quantizeHalvesMeasured(src, count, blockSize, first, end, codes, absmax, into, blockTerms);
            }
            return;
        }
        long blocksPerChunk = Math.max(1, MEASURED_CHUNK_ELEMENTS / blockSize);
        for (long first = firstBlock; first < endBlock; first += blocksPerChunk) {
            long end = Math.min(endBlock, first + blocksPerChunk);
            quantize(src, type, count, blockSize, first, end, codes, absmax);
            measure(src, type, count, blockSize, first, end, codes, absmax, into, blockTerms);
        }
    }

    /**
     * quantizeHalves for BF16 blocks whose absmax is already stored, with measure's figures and terms taken
     * from the same registers: the scaled values the search used, and the codes it found looked up as levels
     * (the same quantities as measure's, summed in the same lanes, flushed to doubles as often). Blocks
     * whose reciprocal absmax is infinite and what does not fill a step go to the scalar rules. The
     * block and flush bookkeeping repeats measure's, which cannot be shared: a helper taking the vector sums
     * would not be inlined here, and would box them.
     */
    private static void quantizeHalvesMeasured(MemorySegment src, long count, int blockSize,
                                               long firstBlock, long endBlock, MemorySegment codes,
                                               MemorySegment absmax, QuantizationError into,
                                               MemorySegment blockTerms) {
        boolean terms = blockTerms != null;
        IntVector quarters = IntVector.fromArray(INTS, QUARTER_THRESHOLDS, 0);
        IntVector eighths = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, 0);
        IntVector eighthsHigh = IntVector.fromArray(INTS, EIGHTH_THRESHOLDS, Math.min(LANES, 8) % 8);
        IntVector t0 = tablePart(LEVEL_TABLE, 0);
        IntVector t1 = tablePart(LEVEL_TABLE, 1);
        double squaredError = 0;
        double squaredSignal = 0;
        float maxError = 0;
        long measured = 0;
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float blockAbsmax = absmax.get(ScalarNf4Kernels.FLOAT, 4 * block);
            float reciprocal = 1f / blockAbsmax;
            double squareScale = (double) blockAbsmax * blockAbsmax;
            double crossTerm = 0;
            double squaredLevels = 0;
            float blockMax = 0;
            int done = 0;
            if (reciprocal != Float.POSITIVE_INFINITY) {
                FloatVector scale = FloatVector.broadcast(FLOATS, reciprocal);
                FloatVector absmaxLanes = FloatVector.broadcast(FLOATS, blockAbsmax);
                while (done <= length - 2 * LANES) {
                    FloatVector error = FloatVector.zero(FLOATS);
                    FloatVector signal = FloatVector.zero(FLOATS);
                    IntVector largestError = IntVector.zero(INTS);
                    FloatVector cross = FloatVector.zero(FLOATS);
                    FloatVector levels = FloatVector.zero(FLOATS);
                    for (int n = 0; n < VECTORS_PER_FLUSH && done <= length - 2 * LANES; n += 2, done += 2 * LANES) {
                        long index = start + done;
                        IntVector pairs = IntVector.fromMemorySegment(INTS, src, 2 * index, LE);
                        // BF16 halves written out, as pairHalf(pairs, true, h) computes them: called, it read 4 %
                        // slower here.
                        FloatVector xe = pairs.lanewise(LSHL, 16).reinterpretAsFloats();
                        FloatVector xo = pairs.and(0xFFFF0000).reinterpretAsFloats();
                        FloatVector se = xe.mul(scale);
                        FloatVector so = xo.mul(scale);
                        IntVector even = search(se, quarters, eighths, eighthsHigh);
                        IntVector odd = search(so, quarters, eighths, eighthsHigh);
                        odd.lanewise(LSHL, 4).or(even).convertShape(I2B, PAIR_CODE_BYTES, 0)
                                .intoMemorySegment(codes, codeByte(index), LE);
                        // lookup and magnitudeBits written out: called, they passed C2's NodeCountInliningCutoff
                        // here and were compiled out of line with their vectors boxed (3.8 ns per element).
                        FloatVector le = (LANES >= 16 ? even.selectFrom(t0)
                                : even.selectFrom(t0).blend(even.selectFrom(t1), even.compare(GT, 7))).reinterpretAsFloats();
                        FloatVector lo = (LANES >= 16 ? odd.selectFrom(t0)
                                : odd.selectFrom(t0).blend(odd.selectFrom(t1), odd.compare(GT, 7))).reinterpretAsFloats();
                        FloatVector dEven = xe.sub(le.mul(absmaxLanes));
                        FloatVector dOdd = xo.sub(lo.mul(absmaxLanes));
                        FloatVector scaledDEven = dEven.mul(scale);
                        FloatVector scaledDOdd = dOdd.mul(scale);
                        error = scaledDOdd.fma(scaledDOdd, scaledDEven.fma(scaledDEven, error));
                        signal = so.fma(so, se.fma(se, signal));
                        largestError = largestError.max(dEven.reinterpretAsInts().and(0x7FFFFFFF))
                                .max(dOdd.reinterpretAsInts().and(0x7FFFFFFF));
                        if (terms) {
                            cross = so.fma(lo, se.fma(le, cross));
                            levels = lo.fma(lo, le.fma(le, levels));
                        }
                    }
                    squaredError += squareScale * error.reduceLanes(ADD);
                    squaredSignal += squareScale * signal.reduceLanes(ADD);
                    blockMax = Math.max(blockMax, Float.intBitsToFloat(largestError.reduceLanes(MAX)));
                    if (terms) {
                        crossTerm += (double) blockAbsmax * cross.reduceLanes(ADD);
                        squaredLevels += levels.reduceLanes(ADD);
                    }
                }
            }
            measured += done;
            maxError = Math.max(maxError, blockMax);
            if (terms) {
                ScalarNf4Kernels.storeTerms(blockTerms, block, true, crossTerm, squaredLevels, blockMax);
            }
            if (done < length) {
                ScalarNf4Kernels.encode(src, FloatType.BF16, start, done, length, blockAbsmax, codes);
                ScalarNf4Kernels.measureBlock(src, FloatType.BF16, start, done, length, blockAbsmax, codes, into, blockTerms,
                        block);
            }
        }
        into.add(measured, squaredError, squaredSignal, maxError);
    }

    /** The absmax of BF16 blocks [firstBlock, endBlock), as quantizeHalves finds them. */
    private static void bf16Maxima(MemorySegment src, long count, int blockSize, long firstBlock, long endBlock,
                                   MemorySegment absmax) {
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            IntVector max = IntVector.zero(INTS);
            int i = 0;
            for (int end = length - 2 * LANES; i <= end; i += 2 * LANES) {
                IntVector pairs = IntVector.fromMemorySegment(INTS, src, 2 * (start + i), LE);
                max = max.max(pairs.and(0x7FFF0000)).max(pairs.lanewise(LSHL, 16).and(0x7FFFFFFF));
            }
            float blockAbsmax = Float.intBitsToFloat(max.reduceLanes(MAX));
            for (; i < length; i++) {
                blockAbsmax = Math.max(blockAbsmax, Math.abs(FloatType.BF16.read(src, start + i)));
            }
            absmax.set(ScalarNf4Kernels.FLOAT, 4 * block, blockAbsmax);
        }
    }

    /**
     * The error of blocks already quantized. BF16 and F16 at 8 lanes or more are read as quantizeHalves
     * writes them: one load of int lanes gives the even and the odd elements, and one byte load widened to
     * ints their codes (in place of two element-order loads and two code unpackings of a broadcast, a blend,
     * a shift and a mask: JMH `quantizeMeasured` BF16 at 512 bits, before its fused loop, 0.88-0.91 to
     * 0.82-0.84 ns per element in cache). MSE scales and native F16 inputs measure here. {@code d = x - level * absmax} is formed in float (one
     * rounding: the difference of two floats) and summed in float lanes as {@code d / absmax} and
     * {@code x / absmax}, which lie in [-1, 1], so that no square overflows at any scale; every eight
     * vectors the float sums are reduced and added in double times {@code absmax^2}. (Widening the float
     * lanes to double lanes instead, with {@code convertShape(F2D, ..., part)}, was not compiled to vector
     * instructions.) Blocks where {@code 1 / absmax} is infinite, and tails, go to the scalar rules.
     */
    private static void measure(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                long endBlock, MemorySegment codes, MemorySegment absmax, QuantizationError into,
                                MemorySegment blockTerms) {
        IntVector t0 = tablePart(LEVEL_TABLE, 0);
        IntVector t1 = tablePart(LEVEL_TABLE, 1);
        IntVector t2 = tablePart(LEVEL_TABLE, 2);
        IntVector t3 = tablePart(LEVEL_TABLE, 3);
        IntVector nibbleShift = IntVector.fromArray(INTS, NIBBLE_SHIFT, 0);
        VectorMask<Integer> inHighHalf = IntVector.fromArray(INTS, IN_HIGH_HALF, 0).compare(NE, 0);
        boolean terms = blockTerms != null;
        boolean halves = type != FloatType.F32 && LANES >= 8;
        boolean bf16 = type == FloatType.BF16;
        int step = halves ? 2 * LANES : LANES;
        double squaredError = 0;
        double squaredSignal = 0;
        float maxError = 0;
        long measured = 0;
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float blockAbsmax = absmax.get(ScalarNf4Kernels.FLOAT, 4 * block);
            float reciprocal = 1f / blockAbsmax;
            double squareScale = (double) blockAbsmax * blockAbsmax;
            double crossTerm = 0;
            double squaredLevels = 0;
            float blockMax = 0;
            int done = 0;
            if (reciprocal != Float.POSITIVE_INFINITY) {
                FloatVector scale = FloatVector.broadcast(FLOATS, blockAbsmax);
                FloatVector unscale = FloatVector.broadcast(FLOATS, reciprocal);
                while (done <= length - step) {
                    FloatVector error = FloatVector.zero(FLOATS);
                    FloatVector signal = FloatVector.zero(FLOATS);
                    IntVector largest = IntVector.zero(INTS);
                    FloatVector cross = FloatVector.zero(FLOATS);
                    FloatVector levels = FloatVector.zero(FLOATS);
                    for (int n = 0; n < VECTORS_PER_FLUSH && done <= length - step; n += step / LANES, done += step) {
                        long index = start + done;
                        for (int half = 0; half < step / LANES; half++) {
                            FloatVector x;
                            IntVector code;
                            if (halves) {
                                x = pairHalf(IntVector.fromMemorySegment(INTS, src, 2 * index, LE), bf16, half)
                                        .reinterpretAsFloats();
                                IntVector codePairs = (IntVector) ByteVector.fromMemorySegment(PAIR_CODE_BYTES, codes,
                                        codeByte(index), LE).convertShape(B2I, INTS, 0);
                                code = (half == 0 ? codePairs : codePairs.lanewise(LSHR, 4)).and(0xF);
                            } else {
                                x = loadBits(src, type, index).reinterpretAsFloats();
                                code = unpack(codes, codeByte(index), nibbleShift, inHighHalf);
                            }
                            FloatVector level = lookup(code, t0, t1, t2, t3).reinterpretAsFloats();
                            FloatVector d = x.sub(level.mul(scale));
                            FloatVector scaledD = d.mul(unscale);
                            FloatVector scaledX = x.mul(unscale);
                            error = scaledD.fma(scaledD, error);
                            signal = scaledX.fma(scaledX, signal);
                            largest = largest.max(magnitudeBits(d));
                            if (terms) {
                                cross = scaledX.fma(level, cross);
                                levels = level.fma(level, levels);
                            }
                        }
                    }
                    squaredError += squareScale * error.reduceLanes(ADD);
                    squaredSignal += squareScale * signal.reduceLanes(ADD);
                    blockMax = Math.max(blockMax, Float.intBitsToFloat(largest.reduceLanes(MAX)));
                    if (terms) {
                        crossTerm += (double) blockAbsmax * cross.reduceLanes(ADD);
                        squaredLevels += levels.reduceLanes(ADD);
                    }
                }
            }
            measured += done;
            maxError = Math.max(maxError, blockMax);
            if (terms) {
                // The vector part starts the block: its terms are stored, and the tail's added to them.
                ScalarNf4Kernels.storeTerms(blockTerms, block, true, crossTerm, squaredLevels, blockMax);
            }
            if (done < length) {
                ScalarNf4Kernels.measureBlock(src, type, start, done, length, blockAbsmax, codes, into, blockTerms,
                        block);
            }
        }
        into.add(measured, squaredError, squaredSignal, maxError);
    }

    /**
     * The plain difference of two F32 arrays, summed in float lanes eight vectors at a time and reduced
     * into doubles. A run whose largest value or error lies outside [2^-56, 2^56] (where float squares
     * would overflow, or underflow and lose the sum) is summed again by the scalar rules, in double.
     */
    @Override
    public void difference(MemorySegment original, MemorySegment restored, long count, QuantizationError into) {
        double squaredError = 0;
        double squaredSignal = 0;
        float maxError = 0;
        long measured = 0;
        long i = 0;
        while (i <= count - LANES) {
            long runStart = i;
            FloatVector error = FloatVector.zero(FLOATS);
            FloatVector signal = FloatVector.zero(FLOATS);
            IntVector largest = IntVector.zero(INTS);
            IntVector largestValue = IntVector.zero(INTS);
            for (int n = 0; n < VECTORS_PER_FLUSH && i <= count - LANES; n++, i += LANES) {
                FloatVector x = FloatVector.fromMemorySegment(FLOATS, original, 4 * i, LE);
                FloatVector d = x.sub(FloatVector.fromMemorySegment(FLOATS, restored, 4 * i, LE));
                error = d.fma(d, error);
                signal = x.fma(x, signal);
                largest = largest.max(magnitudeBits(d));
                largestValue = largestValue.max(magnitudeBits(x));
            }
            float runMax = Float.intBitsToFloat(largest.reduceLanes(MAX));
            float runMaxValue = Float.intBitsToFloat(largestValue.reduceLanes(MAX));
            if (inSquareRange(runMax) && inSquareRange(runMaxValue)) {
                squaredError += error.reduceLanes(ADD);
                squaredSignal += signal.reduceLanes(ADD);
                maxError = Math.max(maxError, runMax);
                measured += i - runStart;
            } else {
                ScalarNf4Kernels.differenceOf(original, restored, runStart, i, into);
            }
        }
        into.add(measured, squaredError, squaredSignal, maxError);
        ScalarNf4Kernels.differenceOf(original, restored, i, count, into);
    }

    /** Whether sums of squares of magnitudes up to {@code max} are exact enough in float: 0, or 2^-56 to 2^56. */
    private static boolean inSquareRange(float max) {
        return max == 0 || max >= 0x1p-56f && max <= 0x1p56f;
    }

    // ---- lane helpers -----------------------------------------------------------------------------

    /**
     * {@code |v|} as float bits, whose integer order is the magnitudes' order (a NaN above them all), so that
     * a running maximum is one integer max: FloatVector.max, with its NaN and -0.0 rules, took six
     * instructions at 256 bits.
     */
    private static IntVector magnitudeBits(FloatVector v) {
        return v.reinterpretAsInts().and(0x7FFFFFFF);
    }

    /**
     * The byte that holds element {@code index}'s code, for an index that is never negative: a shift, where
     * {@code index / 2} compiles to a signed division's three instructions.
     */
    private static long codeByte(long index) {
        return index >>> 1;
    }

    private static IntVector tablePart(int[] table, int part) {
        return IntVector.fromArray(INTS, table, Math.min(part, TABLE_SIZE / LANES - 1) * LANES);
    }

    /**
     * {@code table[index]} per lane for a 16-entry table split over 16 / LANES vectors, indexes 0 to 15
     * ({@code selectFrom} wraps them modulo its table's size).
     */
    private static IntVector lookup(IntVector index, IntVector t0, IntVector t1, IntVector t2, IntVector t3) {
        // The upper half by GT 7, never GE 8: AVX2 compares integers only by GT and EQ, so GE costs an
        // inversion (two instructions more). And at 256 bits two one-table lookups, not selectFrom(t0, t1),
        // which C2 lowers on AVX2 with that same GE (AVX-512 runs the 512-bit kernels: one lookup).
        return lookup(index, index.compare(GT, 7), t0, t1, t2, t3);
    }

    /** {@link #lookup(IntVector, IntVector, IntVector, IntVector, IntVector)} with its mask of indexes above 7 given. */
    private static IntVector lookup(IntVector index, VectorMask<Integer> upper, IntVector t0, IntVector t1, IntVector t2,
                                    IntVector t3) {
        return LANES >= 16 ? index.selectFrom(t0)
                : LANES == 8 ? index.selectFrom(t0).blend(index.selectFrom(t1), upper)
                : index.selectFrom(t0, t1).blend(index.selectFrom(t2, t3), upper);
    }

    /** The float32 bit patterns of LANES elements, on integer lanes throughout. */
    private static IntVector loadBits(MemorySegment src, FloatType type, long index) {
        return switch (type) {
            case F32 -> IntVector.fromMemorySegment(INTS, src, 4 * index, LE);
            case BF16 -> halfBits(src, index).lanewise(LSHL, 16);
            case F16 -> f16ToFloatBits(halfBits(src, index));
        };
    }

    private static IntVector halfBits(MemorySegment src, long index) {
        return (IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, src, 2 * index, LE).convertShape(S2I, INTS, 0);
    }

    /**
     * Float.float16ToFloat on lanes whose low 16 bits hold binary16 patterns (the high bits are not read), as
     * float bits; exact.
     */
    private static IntVector f16ToFloatBits(IntVector half) {
        IntVector sign = half.and(0x8000).lanewise(LSHL, 16);
        IntVector magnitude = half.and(0x7FFF);
        // Re-bias the exponent by 127 - 15; infinities and NaNs need it twice to reach 255.
        IntVector rebias = IntVector.broadcast(INTS, 112 << 23);
        IntVector normal = magnitude.lanewise(LSHL, 13).add(rebias).add(rebias, magnitude.compare(GT, 0x7BFF));
        IntVector subnormal = ((FloatVector) magnitude.convert(I2F, 0)).mul(HALF_SUBNORMAL_UNIT).reinterpretAsInts();
        return normal.blend(subnormal, magnitude.compare(LT, 0x0400)).or(sign);
    }

    private static void store(MemorySegment dst, FloatType type, long index, FloatVector value) {
        switch (type) {
            case F32 -> value.intoMemorySegment(dst, 4 * index, LE);
            case F16 -> storeHalfBits(dst, index, floatToF16(value.reinterpretAsInts()));
            case BF16 -> storeHalfBits(dst, index, floatToBf16(value.reinterpretAsInts()));
        }
    }

    private static void storeHalfBits(MemorySegment dst, long index, IntVector bits) {
        bits.convertShape(I2S, HALF_SHORTS, 0).reinterpretAsShorts().intoMemorySegment(dst, 2 * index, LE);
    }

    /** FloatType.BF16.floatToHalfBits on lanes: round to nearest even, a NaN stays a quiet NaN. */
    private static IntVector floatToBf16(IntVector bits) {
        IntVector rounded = bf16InHighHalf(bits).lanewise(LSHR, 16);
        IntVector quietNaN = bits.lanewise(LSHR, 16).or(0x0040);
        return rounded.blend(quietNaN, bits.and(0x7FFFFFFF).compare(GT, 0x7F800000));
    }

    /** Float.floatToFloat16 on lanes, NaN payloads included; round to nearest even. */
    private static IntVector floatToF16(IntVector bits) {
        IntVector sign = bits.lanewise(LSHR, 16).and(0x8000);
        IntVector magnitude = bits.and(0x7FFFFFFF);
        // Normal results: drop 13 mantissa bits with a rounding bias of 0xFFF plus the kept bit's parity;
        // a carry runs into the exponent, and past 65504 into infinity, as it should.
        IntVector normal = magnitude.add((15 - 127) << 23).add(0xFFF)
                .add(magnitude.lanewise(LSHR, 13).and(1)).lanewise(LSHR, 13);
        // Subnormal results: adding 0.5f lines the binary16 subnormal unit up with the float's last
        // mantissa bit, so the hardware's own rounding does the work.
        IntVector subnormal = magnitude.reinterpretAsFloats().add(0.5f).reinterpretAsInts().sub(0x3F000000);
        IntVector nan = bits.and(0x007FE000).lanewise(LSHR, 13).or(bits.and(0x1FF0).lanewise(LSHR, 4))
                .or(bits.and(0xF)).or(0x7C00);
        return normal
                .blend(subnormal, magnitude.compare(LT, 113 << 23))
                .blend(IntVector.broadcast(INTS, 0x7C00), magnitude.compare(GT, 0x477FFFFF))
                .blend(nan, magnitude.compare(GT, 0x7F800000))
                .or(sign);
    }
}
