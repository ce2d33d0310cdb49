package dev.qnat.nf4;

import dev.qnat.nf4.kernel.Nf4KernelProvider;
import dev.qnat.nf4.kernel.Nf4Kernels;
import dev.qnat.nf4.kernel.ScalarNf4Kernels;
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
import java.util.concurrent.ForkJoinPool;

/**
 * NF4 block quantization as bitsandbytes' {@code quantize_4bit(quant_type="nf4")} does it, bit for bit
 * (the full rules: src/spec/nf4-codec.md). The input is cut into blocks of {@code blockSize} elements
 * over its flattened order; each block stores its absmax as a float and one 4-bit code per element,
 * two codes per byte with element 2i in the low nibble.
 *
 * <p>Sources and destinations are Java arrays or {@link MemorySegment}s (little-endian, any alignment,
 * e.g. a mapped file). Destinations are the caller's; they may be larger than needed, and only their
 * first {@link #packedSize} code bytes and {@link #blockCount} absmax floats are written. Every argument
 * is checked, and the input scanned for NaN and infinities, before the first byte is written: a failed
 * call leaves the destinations untouched. Nothing is allocated per block. The {@code ...Parallel}
 * variants split the blocks into ranges run on an executor.
 */
public final class Nf4 {
    /** The smallest block size. */
    public static final int MIN_BLOCK_SIZE = 2;
    /** The largest block size, 2^20. */
    public static final int MAX_BLOCK_SIZE = 1 << 20;
    /** bitsandbytes' default block size. */
    public static final int DEFAULT_BLOCK_SIZE = 64;

    // Parallel work goes in ranges of at least this many elements, so that task overhead stays small.
    private static final long MIN_ELEMENTS_PER_TASK = 1 << 16;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong WORD = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    // Never started: it only asks segments whether a thread other than the caller may touch them.
    private static final Thread SOME_OTHER_THREAD = Thread.ofVirtual().unstarted(() -> { });

    private Nf4() {}

    /**
     * Whether {@code blockSize} is one NF4 allows: an even number from 2 to 2^20.
     *
     * @param blockSize a candidate number of elements per block, not yet checked
     * @return true if it is even and from {@link #MIN_BLOCK_SIZE} to {@link #MAX_BLOCK_SIZE}
     */
    public static boolean isBlockSize(long blockSize) {
        return blockSize >= MIN_BLOCK_SIZE && blockSize <= MAX_BLOCK_SIZE && blockSize % 2 == 0;
    }

    /**
     * Checks a block size: an even number from 2 to 2^20.
     *
     * @param blockSize elements per block
     * @return {@code blockSize}, unchanged
     * @throws IllegalArgumentException it is odd, or outside 2 to 2^20
     */
    public static int checkBlockSize(int blockSize) {
        if (!isBlockSize(blockSize)) {
            throw new IllegalArgumentException("block size must be an even number from " + MIN_BLOCK_SIZE + " to "
                    + MAX_BLOCK_SIZE + ", got " + blockSize);
        }
        return blockSize;
    }

    /**
     * Number of blocks, and so of absmax values, for {@code count} elements.
     *
     * @param count number of elements, 0 or more
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @return {@code count / blockSize} rounded up; 0 for no elements
     * @throws IllegalArgumentException {@code blockSize} is not a valid block size
     */
    public static long blockCount(long count, int blockSize) {
        checkBlockSize(blockSize);
        return count / blockSize + (count % blockSize == 0 ? 0 : 1);
    }

    /**
     * Bytes of packed codes for {@code count} elements: two per byte, rounded up.
     *
     * @param count number of elements, 0 or more
     * @return {@code count / 2} rounded up
     */
    public static long packedSize(long count) {
        return count / 2 + (count & 1);
    }

    /**
     * For short-lived processes, a command line say: this process will quantize (or dequantize) about
     * {@code elements} elements from now on, on {@code threads} threads. Where that is little per thread,
     * quantize (or dequantize) calls run on the scalar kernels, which give the same bytes and are compiled
     * within milliseconds, where the vector kernels would spend much of such a run interpreted before the
     * JIT compiles them. Long-running processes need not call it.
     *
     * @param elements about how many elements the process will still quantize or dequantize; each call
     *                 replaces the last
     * @param threads how many threads will share that work; values below 1 count as 1
     */
    public static void expectWork(long elements, int threads) {
        Nf4KernelProvider.expectWork(elements, threads);
    }

    /**
     * The name of the kernels quantize calls run on now, e.g. {@code panama-256} or {@code scalar}.
     *
     * @return {@code scalar}, or {@code panama-} and the vector size in bits
     */
    public static String kernelName() {
        return Nf4KernelProvider.quantizingName();
    }

    // ---- quantize ---------------------------------------------------------------------------------

    /**
     * Quantizes float32 values.
     *
     * @param src the values, in flattened order; all must be finite
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @param codes receives the packed codes: at least {@code packedSize(src.length)} bytes
     * @param absmax receives one absmax per block: at least {@code blockCount(src.length, blockSize)} floats
     * @throws NonFiniteValueException {@code src} holds a NaN or an infinity; nothing has been written
     * @throws IllegalArgumentException the block size is not valid, or {@code codes} or {@code absmax} is too small
     */
    public static void quantize(float[] src, int blockSize, byte[] codes, float[] absmax) {
        quantize(MemorySegment.ofArray(Objects.requireNonNull(src, "src")), FloatType.F32, blockSize,
                MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax));
    }

    /**
     * Quantizes F16 or BF16 bit patterns.
     *
     * @param src the values as bit patterns of {@code srcType}, in flattened order; all must be finite
     * @param srcType {@link FloatType#F16} or {@link FloatType#BF16}
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @param codes receives the packed codes: at least {@code packedSize(src.length)} bytes
     * @param absmax receives one absmax per block: at least {@code blockCount(src.length, blockSize)} floats
     * @throws NonFiniteValueException {@code src} holds a NaN or an infinity; nothing has been written
     * @throws IllegalArgumentException {@code srcType} is F32, the block size is not valid, or {@code codes} or
     *         {@code absmax} is too small
     */
    public static void quantize(short[] src, FloatType srcType, int blockSize, byte[] codes, float[] absmax) {
        quantize(MemorySegment.ofArray(Objects.requireNonNull(src, "src")), requireHalf(srcType), blockSize,
                MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax));
    }

    /**
     * Quantizes the elements of {@code src}, a whole number of {@code srcType} elements, on this thread.
     *
     * @param src the input's little-endian elements, in flattened order; all must be finite
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @param codes receives the packed codes: at least {@link #packedSize} of the element count, in bytes; writable
     * @param absmax receives one little-endian float32 absmax per block: at least {@code 4 * blockCount} bytes;
     *        writable
     * @throws NonFiniteValueException {@code src} holds a NaN or an infinity; nothing has been written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, or {@code codes} or {@code absmax} is too small or read-only
     */
    public static void quantize(MemorySegment src, FloatType srcType, int blockSize, MemorySegment codes,
                                MemorySegment absmax) {
        long count = checkQuantize(src, srcType, blockSize, codes, absmax);
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(src);
        throwIfNonFinite(src, srcType, kernels.firstNonFinite(src, srcType, 0, count));
        kernels.quantize(src, srcType, count, blockSize, 0, blockCount(count, blockSize), codes, absmax);
    }

    /**
     * {@link #quantize(MemorySegment, FloatType, int, MemorySegment, MemorySegment)} on the common pool.
     *
     * @param src the input's little-endian elements, in flattened order; all must be finite
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @param codes receives the packed codes: at least {@link #packedSize} of the element count, in bytes; writable
     * @param absmax receives one little-endian float32 absmax per block: at least {@code 4 * blockCount} bytes;
     *        writable
     * @throws NonFiniteValueException {@code src} holds a NaN or an infinity; nothing has been written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, or {@code codes} or {@code absmax} is too small or read-only
     */
    public static void quantizeParallel(MemorySegment src, FloatType srcType, int blockSize, MemorySegment codes,
                                        MemorySegment absmax) {
        quantizeParallel(src, srcType, blockSize, codes, absmax, ForkJoinPool.commonPool());
    }

    /**
     * Quantizes with ranges of blocks run on {@code executor}; same result as the one-thread call.
     *
     * <p>Why the whole input is scanned first, in both calls, rather than the scan fused into the pass
     * (quantizing into staging memory the size of the output, where a NaN shows in its block's absmax, and
     * copying it out once all is finite): fresh staging memory costs its page faults, zeroing and the
     * copy, more than the scan's read. At 64 Mi F32 elements on one AVX2 core that made the call 1.37 ns
     * per element against 0.92 for the blocks alone and 0.33 for the scan (JMH, 2026-12-01).
     *
     * @param src the input's little-endian elements, in flattened order; all must be finite
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @param codes receives the packed codes: at least {@link #packedSize} of the element count, in bytes; writable
     * @param absmax receives one little-endian float32 absmax per block: at least {@code 4 * blockCount} bytes;
     *        writable
     * @param executor runs the ranges; the caller runs them all instead where a segment is confined to its thread
     * @throws NonFiniteValueException {@code src} holds a NaN or an infinity; nothing has been written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, or {@code codes} or {@code absmax} is too small or read-only
     */
    public static void quantizeParallel(MemorySegment src, FloatType srcType, int blockSize, MemorySegment codes,
                                        MemorySegment absmax, Executor executor) {
        Objects.requireNonNull(executor, "executor");
        long count = checkQuantize(src, srcType, blockSize, codes, absmax);
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(src);
        List<long[]> ranges = blockRanges(count, blockSize, executor, src, codes, absmax);
        // First every range is scanned, so that a bad element anywhere stops the call before any write.
        throwIfNonFinite(src, srcType, runAll(ranges, executor, range -> kernels.firstNonFinite(src, srcType,
                range[0] * blockSize, Math.min(range[1] * (long) blockSize, count)))
                .stream().filter(i -> i >= 0).min(Long::compare).orElse(-1L));
        runAll(ranges, executor, range -> {
            kernels.quantize(src, srcType, count, blockSize, range[0], range[1], codes, absmax);
            return 0L;
        });
    }

    /**
     * Quantizes blocks {@code [firstBlock, endBlock)} of {@code src} into their places in {@code codes} and
     * {@code absmax}, for writers whose output is thrown away on failure (a temp file, say), so that the
     * input is read once instead of twice: there is no scan first. A NaN or infinity is found afterwards
     * from its block's absmax and reported as {@link NonFiniteValueException} with its index; the range's
     * output is then partly written. Safe to call concurrently for disjoint ranges.
     *
     * @param src the whole input's little-endian elements, not only the range's
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block the whole input is cut into, an even number from 2 to 2^20
     * @param firstBlock the range's first block, from 0
     * @param endBlock the block after the range's last, at most {@code blockCount}; {@code firstBlock} for none
     * @param codes the whole output's packed codes, as for the one-call quantize; the range's bytes are written
     * @param absmax the whole output's float32 absmax, one per block as for the one-call quantize; the range's
     *        are written
     * @throws NonFiniteValueException the range holds a NaN or an infinity; its output is then partly written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, or {@code codes} or {@code absmax} is too small or read-only
     * @throws IndexOutOfBoundsException {@code firstBlock} is negative or above {@code endBlock}, or
     *         {@code endBlock} is past the last block
     */
    public static void quantizeBlocks(MemorySegment src, FloatType srcType, int blockSize, long firstBlock,
                                      long endBlock, MemorySegment codes, MemorySegment absmax) {
        long count = checkQuantize(src, srcType, blockSize, codes, absmax);
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(src);
        checkBlockRange(firstBlock, endBlock, blockCount(count, blockSize));
        kernels.quantize(src, srcType, count, blockSize, firstBlock, endBlock, codes, absmax);
        throwIfNonFinite(src, srcType, firstNonFiniteBlock(src, srcType, count, blockSize, firstBlock, endBlock, absmax,
                kernels));
    }

    private static void checkBlockRange(long firstBlock, long endBlock, long blocks) {
        if (firstBlock < 0 || firstBlock > endBlock || endBlock > blocks) {
            throw new IndexOutOfBoundsException("blocks [" + firstBlock + ", " + endBlock + ") of " + blocks);
        }
    }

    /**
     * A NaN or infinity in blocks just quantized shows in their absmax (the kernels take it as a maximum
     * of magnitude bits, which a NaN's exceed): the index of the first such element, or -1.
     */
    private static long firstNonFiniteBlock(MemorySegment src, FloatType srcType, long count, int blockSize,
                                            long firstBlock, long endBlock, MemorySegment absmax, Nf4Kernels kernels) {
        long block = kernels.firstNonFinite(absmax, FloatType.F32, firstBlock, endBlock);
        if (block < 0) {
            return -1;
        }
        long start = block * blockSize;
        return kernels.firstNonFinite(src, srcType, start, Math.min(count, start + blockSize));
    }

    private static void throwIfNonFinite(MemorySegment src, FloatType srcType, long index) {
        if (index >= 0) {
            throw nonFinite(src, srcType, index);
        }
    }

    /**
     * {@link #quantizeBlocks(MemorySegment, FloatType, int, long, long, MemorySegment, MemorySegment)}, and
     * adds the reconstruction error of each small chunk of blocks to {@code error} right after quantizing
     * it, while it is in cache: the figures {@code qnat compare} gives, without a second pass. Where
     * {@code blockTerms} is not null (12 bytes per block of the whole input), it also keeps what
     * {@link #errorAtStoredAbsmax} needs once the absmax values are stored another way.
     *
     * @param src the whole input's little-endian elements, not only the range's
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block the whole input is cut into, an even number from 2 to 2^20
     * @param firstBlock the range's first block, from 0
     * @param endBlock the block after the range's last, at most {@code blockCount}; {@code firstBlock} for none
     * @param codes the whole output's packed codes, as for the one-call quantize; the range's bytes are written
     * @param absmax the whole output's float32 absmax, one per block as for the one-call quantize; the range's
     *        are written
     * @param error receives the range's error, added to what it holds
     * @param blockTerms null, or memory of 12 bytes per block of the whole input, where each range block's
     *        {@code sum x l}, {@code sum l^2} and {@code max |d|} are written as three float32
     * @throws NonFiniteValueException the range holds a NaN or an infinity; its output is then partly written, and
     *         {@code error} partly added to and {@code blockTerms} partly written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, {@code codes} or {@code absmax} is too small or read-only, or {@code blockTerms} is too small
     * @throws IndexOutOfBoundsException {@code firstBlock} is negative or above {@code endBlock}, or
     *         {@code endBlock} is past the last block
     */
    public static void quantizeBlocks(MemorySegment src, FloatType srcType, int blockSize, long firstBlock,
                                      long endBlock, MemorySegment codes, MemorySegment absmax, QuantizationError error,
                                      MemorySegment blockTerms) {
        Objects.requireNonNull(error, "error");
        long count = checkQuantize(src, srcType, blockSize, codes, absmax);
        if (blockTerms != null) {
            checkRoom(blockTerms, 12 * blockCount(count, blockSize), "block terms", count);
        }
        checkBlockRange(firstBlock, endBlock, blockCount(count, blockSize));
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(src);
        kernels.quantizeMeasured(src, srcType, count, blockSize, firstBlock, endBlock, codes, absmax, error, blockTerms);
        throwIfNonFinite(src, srcType, firstNonFiniteBlock(src, srcType, count, blockSize, firstBlock, endBlock, absmax,
                kernels));
    }

    // ---- MSE scales (src/spec/nf4-codec.md, "MSE scales") ------------------------------------------

    /** Elements whose scales are chosen, then encoded, at a time: 16 KiB of F32, still in L1 when encoded. */
    private static final int MSE_CHUNK_ELEMENTS = 1 << 12;

    /**
     * Quantizes as {@link #quantize(MemorySegment, FloatType, int, MemorySegment, MemorySegment)} does, each
     * block's scale chosen by {@code rule} and written where the absmax would be; with {@link ScaleRule#ABSMAX}
     * it is that call. The input is scanned first: on a NaN or infinity nothing is written.
     *
     * @param src the input's little-endian elements, in flattened order; all must be finite
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @param codes receives the packed codes: at least {@link #packedSize} of the element count, in bytes; writable
     * @param scales receives one little-endian float32 scale per block: at least {@code 4 * blockCount} bytes; writable
     * @param rule how each block's scale is chosen
     * @throws NonFiniteValueException {@code src} holds a NaN or an infinity; nothing has been written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, or {@code codes} or {@code scales} is too small or read-only
     */
    public static void quantize(MemorySegment src, FloatType srcType, int blockSize, MemorySegment codes,
                                MemorySegment scales, ScaleRule rule) {
        if (Objects.requireNonNull(rule, "rule") == ScaleRule.ABSMAX) {
            quantize(src, srcType, blockSize, codes, scales);
            return;
        }
        long count = checkQuantize(src, srcType, blockSize, codes, scales);
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(src);
        throwIfNonFinite(src, srcType, kernels.firstNonFinite(src, srcType, 0, count));
        quantizeMse(kernels, src, srcType, count, blockSize, 0, blockCount(count, blockSize), codes, scales, null);
    }

    /**
     * Quantizes float32 values with scales chosen by {@code rule}.
     *
     * @param src the values, in flattened order; all must be finite
     * @param blockSize elements per block, an even number from 2 to 2^20; the last block may be shorter
     * @param codes receives the packed codes: at least {@code packedSize(src.length)} bytes
     * @param scales receives one scale per block: at least {@code blockCount(src.length, blockSize)} floats
     * @param rule how each block's scale is chosen
     * @throws NonFiniteValueException {@code src} holds a NaN or an infinity; nothing has been written
     * @throws IllegalArgumentException the block size is not valid, or {@code codes} or {@code scales} is too small
     */
    public static void quantize(float[] src, int blockSize, byte[] codes, float[] scales, ScaleRule rule) {
        quantize(MemorySegment.ofArray(Objects.requireNonNull(src, "src")), FloatType.F32, blockSize,
                MemorySegment.ofArray(codes), MemorySegment.ofArray(scales), rule);
    }

    /**
     * {@link #quantizeBlocks(MemorySegment, FloatType, int, long, long, MemorySegment, MemorySegment)} with
     * each block's scale chosen by {@code rule}, adding the blocks' error to {@code error} where it is not
     * null (as the measuring {@code quantizeBlocks} does, without block terms). A NaN or infinity is reported
     * as {@link NonFiniteValueException}; the range's output is then partly written.
     *
     * @param src the whole input's little-endian elements, not only the range's
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block the whole input is cut into, an even number from 2 to 2^20
     * @param firstBlock the range's first block, from 0
     * @param endBlock the block after the range's last, at most {@code blockCount}; {@code firstBlock} for none
     * @param codes the whole output's packed codes, as for the one-call quantize; the range's bytes are written
     * @param scales the whole output's float32 scales, one per block; the range's are written
     * @param rule how each block's scale is chosen
     * @param error receives the range's error, added to what it holds; null not to measure it
     * @throws NonFiniteValueException the range holds a NaN or an infinity; its output is then partly written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, or {@code codes} or {@code scales} is too small or read-only
     * @throws IndexOutOfBoundsException {@code firstBlock} is negative or above {@code endBlock}, or
     *         {@code endBlock} is past the last block
     */
    public static void quantizeBlocks(MemorySegment src, FloatType srcType, int blockSize, long firstBlock,
                                      long endBlock, MemorySegment codes, MemorySegment scales, ScaleRule rule,
                                      QuantizationError error) {
        if (Objects.requireNonNull(rule, "rule") == ScaleRule.ABSMAX) {
            if (error == null) {
                quantizeBlocks(src, srcType, blockSize, firstBlock, endBlock, codes, scales);
            } else {
                quantizeBlocks(src, srcType, blockSize, firstBlock, endBlock, codes, scales, error, null);
            }
            return;
        }
        long count = checkQuantize(src, srcType, blockSize, codes, scales);
        checkBlockRange(firstBlock, endBlock, blockCount(count, blockSize));
        quantizeMse(Nf4KernelProvider.kernelsReading(src), src, srcType, count, blockSize, firstBlock, endBlock, codes,
                scales, error);
    }

    /**
     * Chooses the scales of blocks {@code [firstBlock, endBlock)} by the MSE rule and writes them, not the
     * codes: for scales that are stored another way (double quantization) before the codes are chosen
     * against the stored values with {@link #encodeBlocks}. A NaN or infinity is reported as
     * {@link NonFiniteValueException}. Safe to call concurrently for disjoint ranges.
     *
     * @param src the whole input's little-endian elements, not only the range's
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block the whole input is cut into, an even number from 2 to 2^20
     * @param firstBlock the range's first block, from 0
     * @param endBlock the block after the range's last, at most {@code blockCount}; {@code firstBlock} for none
     * @param scales the whole output's float32 scales, one per block (at least {@code 4 * blockCount} bytes);
     *        the range's are written
     * @throws NonFiniteValueException the range holds a NaN or an infinity; its scales have then been written
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, or {@code scales} is too small or read-only
     * @throws IndexOutOfBoundsException {@code firstBlock} is negative or above {@code endBlock}, or
     *         {@code endBlock} is past the last block
     */
    public static void mseScales(MemorySegment src, FloatType srcType, int blockSize, long firstBlock, long endBlock,
                                 MemorySegment scales) {
        checkBlockSize(blockSize);
        long count = elementCount(Objects.requireNonNull(src, "source"), Objects.requireNonNull(srcType, "type"),
                "source");
        checkRoom(Objects.requireNonNull(scales, "scales"), 4 * blockCount(count, blockSize), "scales", count);
        checkWritable(scales, "scales");
        checkBlockRange(firstBlock, endBlock, blockCount(count, blockSize));
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(src);
        kernels.mseScales(src, srcType, count, blockSize, firstBlock, endBlock, scales);
        throwIfNonFinite(src, srcType, firstNonFiniteBlock(src, srcType, count, blockSize, firstBlock, endBlock, scales,
                kernels));
    }

    /**
     * Writes the codes of blocks {@code [firstBlock, endBlock)} against the given finite {@code scales}:
     * each element's code is the codec's, with its block's scale in place of the absmax. Where {@code error}
     * is not null, adds the blocks' error at those scales to it. The input is not scanned again: it must be
     * one that {@link #mseScales} accepted.
     *
     * @param src the whole input's little-endian elements, not only the range's
     * @param srcType the type of {@code src}'s elements
     * @param blockSize elements per block the whole input is cut into, an even number from 2 to 2^20
     * @param firstBlock the range's first block, from 0
     * @param endBlock the block after the range's last, at most {@code blockCount}; {@code firstBlock} for none
     * @param scales the whole input's little-endian float32 scales, one per block; only read, and finite in the range
     * @param codes the whole output's packed codes, as for the one-call quantize; the range's bytes are written
     * @param error receives the range's error at {@code scales}, added to what it holds; null not to measure it
     * @throws IllegalArgumentException the block size is not valid, {@code src} is not a whole number of
     *         elements, {@code codes} or {@code scales} is too small, {@code codes} is read-only, or a scale of the
     *         range is not finite
     * @throws IndexOutOfBoundsException {@code firstBlock} is negative or above {@code endBlock}, or
     *         {@code endBlock} is past the last block
     */
    public static void encodeBlocks(MemorySegment src, FloatType srcType, int blockSize, long firstBlock, long endBlock,
                                    MemorySegment scales, MemorySegment codes, QuantizationError error) {
        long count = checkSizes(blockSize, src, srcType, "source", codes, scales);
        checkWritable(codes, "codes");
        checkBlockRange(firstBlock, endBlock, blockCount(count, blockSize));
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(src, scales);
        long badScale = kernels.firstNonFinite(scales, FloatType.F32, firstBlock, endBlock);
        if (badScale >= 0) {
            throw new IllegalArgumentException("scale of block " + badScale + " is " + scales.getAtIndex(FLOAT, badScale));
        }
        kernels.encode(src, srcType, count, blockSize, firstBlock, endBlock, scales, codes, error);
    }

    /** MSE scales, then codes, chunk by chunk while each chunk is in cache; a NaN stops it before its chunk's codes. */
    private static void quantizeMse(Nf4Kernels kernels, MemorySegment src, FloatType srcType, long count, int blockSize,
                                    long firstBlock, long endBlock, MemorySegment codes, MemorySegment scales,
                                    QuantizationError error) {
        long blocksPerChunk = Math.max(1, MSE_CHUNK_ELEMENTS / blockSize);
        for (long first = firstBlock; first < endBlock; first += blocksPerChunk) {
            long end = Math.min(endBlock, first + blocksPerChunk);
            kernels.mseScales(src, srcType, count, blockSize, first, end, scales);
            throwIfNonFinite(src, srcType, firstNonFiniteBlock(src, srcType, count, blockSize, first, end, scales,
                    kernels));
            kernels.encode(src, srcType, count, blockSize, first, end, scales, codes, error);
        }
    }

    /**
     * The error of blocks {@code [0, blocks)} once their absmax values {@code absmax} are stored as
     * {@code stored} (double quantization keeps an 8-bit code per block): {@code measured} and the
     * {@code blockTerms} that the measuring {@code quantizeBlocks} kept give the squared error at the
     * stored values exactly, as {@code sum (x - l a')^2 = sum (x - l a)^2 - 2 (a' - a) sum x l
     * + (a'^2 - a^2) sum l^2} per block; the largest error is bounded per block from the terms, and the
     * few blocks that can hold it are measured again from {@code src} and {@code codes}.
     *
     * @param measured the blocks' error at their own absmax, as the measuring {@code quantizeBlocks} added it up;
     *        not changed
     * @param blockTerms the terms those calls kept, 12 bytes per block
     * @param absmax the blocks' float32 absmax values as those calls wrote them
     * @param stored the float32 values the absmax are stored as, one per block
     * @param blocks how many blocks, from block 0, {@code measured} covers
     * @param src the input that was quantized
     * @param srcType the type of {@code src}'s elements
     * @param blockSize the block size it was quantized with
     * @param codes the packed codes those calls wrote
     * @return a new sum: {@code measured}'s count and {@code sum x^2}, with the squared error (never below 0)
     *         and the largest error at the stored values
     * @throws IllegalArgumentException {@code src} is not a whole number of {@code srcType} elements
     * @throws IndexOutOfBoundsException {@code blockTerms}, {@code absmax} or {@code stored} is too small for
     *         {@code blocks} blocks
     */
    public static QuantizationError errorAtStoredAbsmax(QuantizationError measured, MemorySegment blockTerms,
                                                        MemorySegment absmax, MemorySegment stored, long blocks,
                                                        MemorySegment src, FloatType srcType, int blockSize,
                                                        MemorySegment codes) {
        long count = elementCount(src, srcType, "source");
        BlockTermsChunk chunk = new BlockTermsChunk(absmax, stored, blockTerms);
        double correction = 0;
        // One pass: the lower bound of the largest error only rises, so a block whose upper bound is below it
        // at its turn cannot hold the largest error; the others are kept and filtered by the final bound.
        double bestLowerBound = 0;
        Candidates candidates = new Candidates();
        for (long first = 0; first < blocks; first += BlockTermsChunk.BLOCKS) {
            int length = chunk.read(first, blocks);
            for (int i = 0; i < length; i++) {
                double a = chunk.absmax[i];
                double shift = (double) chunk.stored[i] - a;
                correction += -2 * shift * chunk.terms[3 * i] + shift * (2 * a + shift) * chunk.terms[3 * i + 1];
                bestLowerBound = Math.max(bestLowerBound, blockMaxBound(chunk.terms[3 * i + 2], a, shift, -1));
                double upperBound = blockMaxBound(chunk.terms[3 * i + 2], a, shift, 1);
                if (upperBound >= bestLowerBound) {
                    candidates.add(first + i, upperBound);
                }
            }
        }
        double maxError = 0;
        QuantizationError exact = new QuantizationError();
        for (int c = 0; c < candidates.size; c++) {
            if (candidates.upperBounds[c] >= bestLowerBound) {
                long b = candidates.blocks[c];
                ScalarNf4Kernels.INSTANCE.measure(src, srcType, count, blockSize, b, b + 1, codes, stored, exact, null);
                maxError = Math.max(maxError, exact.maxAbsError());
            }
        }
        QuantizationError result = new QuantizationError();
        result.add(measured.count(), Math.max(0, measured.sumSquaredError() + correction), measured.sumSquaredSignal(),
                maxError);
        return result;
    }

    /**
     * An upper ({@code side} 1) or lower ({@code side} -1) bound of a block's largest error at absmax
     * {@code a + shift}, given {@code atOwnAbsmax}, its largest error at {@code a}: levels lie in [-1, 1],
     * so no error moves by more than |shift|; the margin covers the rounding of the stored float terms
     * and of {@code level * absmax}.
     */
    private static double blockMaxBound(double atOwnAbsmax, double a, double shift, int side) {
        double margin = 1e-6 * (atOwnAbsmax + 2 * Math.abs(a) + Math.abs(shift));
        return atOwnAbsmax + side * (Math.abs(shift) + margin);
    }

    /** Blocks that may hold the largest error, with their upper bounds; grown as needed. */
    private static final class Candidates {
        long[] blocks = new long[64];
        double[] upperBounds = new double[64];
        int size;

        void add(long block, double upperBound) {
            if (size == blocks.length) {
                blocks = Arrays.copyOf(blocks, 2 * size);
                upperBounds = Arrays.copyOf(upperBounds, 2 * size);
            }
            blocks[size] = block;
            upperBounds[size++] = upperBound;
        }
    }

    /**
     * A run of blocks' absmax values, stored values and terms, copied into heap arrays: this runs once
     * per tensor, after its quantization, often before the JIT has compiled it fully, and loops over
     * arrays are fast at every tier where segment accesses one by one were not.
     */
    private static final class BlockTermsChunk {
        static final int BLOCKS = 2048;
        final float[] absmax = new float[BLOCKS];
        final float[] stored = new float[BLOCKS];
        final float[] terms = new float[3 * BLOCKS];
        private final MemorySegment absmaxSource;
        private final MemorySegment storedSource;
        private final MemorySegment termsSource;

        BlockTermsChunk(MemorySegment absmax, MemorySegment stored, MemorySegment terms) {
            this.absmaxSource = absmax;
            this.storedSource = stored;
            this.termsSource = terms;
        }

        /** Reads the blocks from {@code first} on (at most BLOCKS of them, none past {@code blocks}). */
        int read(long first, long blocks) {
            int length = (int) Math.min(BLOCKS, blocks - first);
            MemorySegment.copy(absmaxSource, FLOAT, 4 * first, absmax, 0, length);
            MemorySegment.copy(storedSource, FLOAT, 4 * first, stored, 0, length);
            MemorySegment.copy(termsSource, FLOAT, 12 * first, terms, 0, 3 * length);
            return length;
        }
    }

    /**
     * Adds to {@code into} the error of the F32 values {@code restored} against the F32 values
     * {@code original} (as many as {@code original} holds): what {@code qnat compare} reports.
     *
     * @param original the little-endian F32 originals; their number sets the element count
     * @param restored the little-endian F32 reconstructions, at least as many; any beyond are ignored
     * @param into receives the error, added to what it holds
     * @throws IllegalArgumentException {@code original} is not a whole number of floats, or {@code restored}
     *         holds fewer
     */
    public static void measureError(MemorySegment original, MemorySegment restored, QuantizationError into) {
        long count = elementCount(Objects.requireNonNull(original, "original"), FloatType.F32, "original");
        checkRoom(Objects.requireNonNull(restored, "restored"), 4 * count, "restored", count);
        Nf4KernelProvider.kernelsReading(original, restored).difference(original, restored, count,
                Objects.requireNonNull(into, "into"));
    }

    /**
     * Copies packed codes from {@code src} to {@code dst} with each byte's nibbles swapped: between
     * QNAT's order (element 2i in the low nibble) and bitsandbytes' (element 2i in the high nibble).
     * {@code src} and {@code dst} may be the same segment.
     *
     * @param src the packed codes: all of its bytes are read
     * @param dst receives them, swapped, in its first {@code src.byteSize()} bytes
     * @throws IllegalArgumentException {@code dst} is smaller than {@code src}, or read-only
     */
    public static void swapNibbles(MemorySegment src, MemorySegment dst) {
        long size = src.byteSize();
        checkRoom(dst, size, "destination", size);
        long i = 0;
        for (; i + 8 <= size; i += 8) {
            long bytes = src.get(WORD, i);
            dst.set(WORD, i, (bytes >>> 4) & 0x0F0F0F0F0F0F0F0FL | (bytes & 0x0F0F0F0F0F0F0F0FL) << 4);
        }
        for (; i < size; i++) {
            int b = src.get(ValueLayout.JAVA_BYTE, i);
            dst.set(ValueLayout.JAVA_BYTE, i, (byte) ((b >>> 4) & 0x0F | (b & 0x0F) << 4));
        }
    }

    // ---- dequantize -------------------------------------------------------------------------------

    /**
     * Reconstructs {@code dst.length} float32 values.
     *
     * @param codes the packed codes, as quantize wrote them: at least {@code packedSize(dst.length)} bytes
     * @param absmax one absmax (or scale) per block: at least {@code blockCount(dst.length, blockSize)} floats
     * @param blockSize the block size the codes were made with
     * @param dst receives the values; its length is the element count
     * @throws IllegalArgumentException the block size is not valid, or {@code codes} or {@code absmax} is too small
     */
    public static void dequantize(byte[] codes, float[] absmax, int blockSize, float[] dst) {
        dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), blockSize,
                MemorySegment.ofArray(Objects.requireNonNull(dst, "dst")), FloatType.F32);
    }

    /**
     * Reconstructs {@code dst.length} values as F16 or BF16 bit patterns (round to nearest even).
     *
     * @param codes the packed codes, as quantize wrote them: at least {@code packedSize(dst.length)} bytes
     * @param absmax one absmax (or scale) per block: at least {@code blockCount(dst.length, blockSize)} floats
     * @param blockSize the block size the codes were made with
     * @param dst receives the values as bit patterns of {@code dstType}; its length is the element count
     * @param dstType {@link FloatType#F16} or {@link FloatType#BF16}
     * @throws IllegalArgumentException {@code dstType} is F32, the block size is not valid, or {@code codes} or
     *         {@code absmax} is too small
     */
    public static void dequantize(byte[] codes, float[] absmax, int blockSize, short[] dst, FloatType dstType) {
        dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), blockSize,
                MemorySegment.ofArray(Objects.requireNonNull(dst, "dst")), requireHalf(dstType));
    }

    /**
     * Reconstructs {@code codebook[code] * absmax} for as many elements as {@code dst} holds of
     * {@code dstType}, on this thread.
     *
     * @param codes the packed codes: at least {@link #packedSize} of the element count, in bytes
     * @param absmax one little-endian float32 absmax (or scale) per block: at least {@code 4 * blockCount} bytes
     * @param blockSize the block size the codes were made with
     * @param dst receives the little-endian values; the number of {@code dstType} elements it holds is the
     *        element count; writable
     * @param dstType the type written; F16 and BF16 round to nearest even
     * @throws IllegalArgumentException the block size is not valid, {@code dst} is not a whole number of
     *         elements or is read-only, or {@code codes} or {@code absmax} is too small
     */
    public static void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, MemorySegment dst,
                                  FloatType dstType) {
        long count = checkDequantize(codes, absmax, blockSize, dst, dstType);
        Nf4KernelProvider.kernelsReading(codes, absmax).dequantize(codes, absmax, blockSize, count, 0,
                blockCount(count, blockSize), dst, dstType);
    }

    /**
     * {@link #dequantize(MemorySegment, MemorySegment, int, MemorySegment, FloatType)} on the common pool.
     *
     * @param codes the packed codes: at least {@link #packedSize} of the element count, in bytes
     * @param absmax one little-endian float32 absmax (or scale) per block: at least {@code 4 * blockCount} bytes
     * @param blockSize the block size the codes were made with
     * @param dst receives the little-endian values; the number of {@code dstType} elements it holds is the
     *        element count; writable
     * @param dstType the type written; F16 and BF16 round to nearest even
     * @throws IllegalArgumentException the block size is not valid, {@code dst} is not a whole number of
     *         elements or is read-only, or {@code codes} or {@code absmax} is too small
     */
    public static void dequantizeParallel(MemorySegment codes, MemorySegment absmax, int blockSize,
                                          MemorySegment dst, FloatType dstType) {
        dequantizeParallel(codes, absmax, blockSize, dst, dstType, ForkJoinPool.commonPool());
    }

    /**
     * Dequantizes with ranges of blocks run on {@code executor}; same result as the one-thread call.
     *
     * @param codes the packed codes: at least {@link #packedSize} of the element count, in bytes
     * @param absmax one little-endian float32 absmax (or scale) per block: at least {@code 4 * blockCount} bytes
     * @param blockSize the block size the codes were made with
     * @param dst receives the little-endian values; the number of {@code dstType} elements it holds is the
     *        element count; writable
     * @param dstType the type written; F16 and BF16 round to nearest even
     * @param executor runs the ranges; the caller runs them all instead where a segment is confined to its thread
     * @throws IllegalArgumentException the block size is not valid, {@code dst} is not a whole number of
     *         elements or is read-only, or {@code codes} or {@code absmax} is too small
     */
    public static void dequantizeParallel(MemorySegment codes, MemorySegment absmax, int blockSize,
                                          MemorySegment dst, FloatType dstType, Executor executor) {
        Objects.requireNonNull(executor, "executor");
        long count = checkDequantize(codes, absmax, blockSize, dst, dstType);
        Nf4Kernels kernels = Nf4KernelProvider.kernelsReading(codes, absmax);
        runAll(blockRanges(count, blockSize, executor, codes, absmax, dst), executor, range -> {
            kernels.dequantize(codes, absmax, blockSize, count, range[0], range[1], dst, dstType);
            return 0L;
        });
    }

    // ---- checks -----------------------------------------------------------------------------------

    private static long checkQuantize(MemorySegment src, FloatType srcType, int blockSize, MemorySegment codes,
                                      MemorySegment absmax) {
        long count = checkSizes(blockSize, src, srcType, "source", codes, absmax);
        checkWritable(codes, "codes");
        checkWritable(absmax, "absmax");
        return count;
    }

    private static long checkDequantize(MemorySegment codes, MemorySegment absmax, int blockSize, MemorySegment dst,
                                        FloatType dstType) {
        long count = checkSizes(blockSize, dst, dstType, "destination", codes, absmax);
        checkWritable(dst, "destination");
        return count;
    }

    /**
     * The block size is valid, {@code values} holds whole elements, and codes and absmax have room for
     * them; returns the element count.
     */
    private static long checkSizes(int blockSize, MemorySegment values, FloatType type, String what,
                                   MemorySegment codes, MemorySegment absmax) {
        checkBlockSize(blockSize);
        long count = elementCount(Objects.requireNonNull(values, what), Objects.requireNonNull(type, "type"), what);
        checkRoom(Objects.requireNonNull(codes, "codes"), packedSize(count), "codes", count);
        checkRoom(Objects.requireNonNull(absmax, "absmax"), 4 * blockCount(count, blockSize), "absmax", count);
        return count;
    }

    private static long elementCount(MemorySegment segment, FloatType type, String what) {
        if (segment.byteSize() % type.byteSize() != 0) {
            throw new IllegalArgumentException(what + " holds " + segment.byteSize() + " bytes, not a whole number of "
                    + type + " elements of " + type.byteSize() + " bytes");
        }
        return segment.byteSize() / type.byteSize();
    }

    private static void checkRoom(MemorySegment segment, long needed, String what, long count) {
        if (segment.byteSize() < needed) {
            throw new IllegalArgumentException(what + " holds " + segment.byteSize() + " bytes but " + count
                    + " elements need " + needed);
        }
    }

    private static void checkWritable(MemorySegment segment, String what) {
        if (segment.isReadOnly()) {
            throw new IllegalArgumentException(what + " is a read-only segment");
        }
    }

    private static FloatType requireHalf(FloatType type) {
        if (Objects.requireNonNull(type, "type") == FloatType.F32) {
            throw new IllegalArgumentException("short[] holds F16 or BF16 bit patterns, not F32; use float[]");
        }
        return type;
    }

    private static NonFiniteValueException nonFinite(MemorySegment src, FloatType type, long index) {
        return new NonFiniteValueException(index, type.read(src, index));
    }

    // ---- parallel plumbing ------------------------------------------------------------------------

    /**
     * Splits the blocks into about four ranges per worker, none smaller than MIN_ELEMENTS_PER_TASK; one
     * range, run by the caller, when a segment is confined to the calling thread.
     */
    private static List<long[]> blockRanges(long count, int blockSize, Executor executor, MemorySegment... segments) {
        long blocks = blockCount(count, blockSize);
        boolean shareable = Arrays.stream(segments).allMatch(s -> s.isAccessibleBy(SOME_OTHER_THREAD));
        int workers = !shareable ? 0 : executor instanceof ForkJoinPool pool ? pool.getParallelism()
                : Runtime.getRuntime().availableProcessors();
        if (workers <= 1) {
            return blocks == 0 ? List.of() : List.<long[]>of(new long[] {0, blocks});
        }
        long minBlocks = Math.max(1, MIN_ELEMENTS_PER_TASK / blockSize);
        long perRange = Math.max(minBlocks, (blocks + 4L * workers - 1) / (4L * workers));
        List<long[]> ranges = new ArrayList<>();
        for (long first = 0; first < blocks; first += perRange) {
            ranges.add(new long[] {first, Math.min(blocks, first + perRange)});
        }
        return ranges;
    }

    private interface RangeTask {
        long run(long[] range);
    }

    private static List<Long> runAll(List<long[]> ranges, Executor executor, RangeTask task) {
        if (ranges.size() <= 1) {
            return ranges.stream().map(task::run).toList();
        }
        List<CompletableFuture<Long>> futures = ranges.stream()
                .map(range -> CompletableFuture.supplyAsync(() -> task.run(range), executor)).toList();
        try {
            return futures.stream().map(CompletableFuture::join).toList();
        } catch (CompletionException e) {
            futures.forEach(f -> f.cancel(false));
            if (e.getCause() instanceof RuntimeException cause) {
                throw cause;
            }
            if (e.getCause() instanceof Error error) {
                throw error;
            }
            throw e;
        }
    }
}
