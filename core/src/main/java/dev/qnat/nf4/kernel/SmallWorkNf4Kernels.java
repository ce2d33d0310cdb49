package dev.qnat.nf4.kernel;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.QuantizationError;
import java.lang.foreign.MemorySegment;
import java.util.function.Supplier;

/**
 * The platform's kernels, with their quantize and dequantize operations handed to the scalar ones in a
 * process that said it has little to do; such a process does not even load the vector kernels for them.
 * Vector code runs interpreted, hundreds of times slower than compiled, until C2 has compiled it after
 * a few seconds of work, while the scalar kernels are compiled within milliseconds: on this project's
 * AVX2 test machine a whole `qnat quantize` was faster on the scalar kernels up to about 300 M elements
 * per thread (BENCHMARKS.md). Both give the same bytes. (A background thread that warmed the vector
 * code up on a few blocks while the scalar kernels worked was tried first: it took 2 to 4 s to get
 * there, competed with the workers for the cores, and made the 222 M-element command twice as slow.)
 */
final class SmallWorkNf4Kernels implements Nf4Kernels {
    /**
     * Work up to this many elements per thread goes to the scalar kernels, once a process says it has no
     * more. The vector kernels' warm-up costs a run about the same whatever its size, while the scalar
     * kernels' extra cost grows with the elements each thread quantizes (BENCHMARKS.md, sixth pass:
     * default options, the crossover lay near 310 M elements on one thread and 830 M on two).
     */
    static final long SMALL_WORK_ELEMENTS_PER_THREAD = 300_000_000L;
    /**
     * The same for the MSE scale search, whose scalar form is several times slower: 222 M elements on two
     * threads ran as fast on either kernels (6.8 and 7.0 s).
     */
    static final long SMALL_MSE_WORK_ELEMENTS_PER_THREAD = 50_000_000L;
    /**
     * The same for dequantize and for the difference of two arrays, on one thread: `qnat dequantize` of
     * all-MiniLM-L6-v2's 22.6 M elements took 1.79 s on the vector kernels and 1.25 s on the scalar ones,
     * 222 M elements 3.21 and 3.04 s, 479 M 4.60 and 5.47 s; `qnat compare` against a QNAT file of 222 M
     * elements 2.47 and 2.29 s, of 479 M 3.42 and 3.78 s.
     */
    static final long SMALL_DEQUANTIZE_WORK_ELEMENTS_PER_THREAD = 200_000_000L;

    private final Nf4Kernels scalar;
    private final Supplier<Nf4Kernels> vector;
    private volatile long elementsPerThread = Long.MAX_VALUE;

    /** {@code vector} gives the platform's kernels, chosen on its first call: small work never calls it. */
    SmallWorkNf4Kernels(Nf4Kernels scalar, Supplier<Nf4Kernels> vector) {
        this.scalar = scalar;
        this.vector = vector;
    }

    /**
     * The process will quantize about {@code elements} elements from now on, on {@code threads} threads;
     * decides which kernels do it.
     */
    void expectWork(long elements, int threads) {
        elementsPerThread = elements / Math.max(1, threads);
    }

    /** The kernels that quantize calls run on now. */
    Nf4Kernels quantizing() {
        return smallUpTo(SMALL_WORK_ELEMENTS_PER_THREAD);
    }

    /** The kernels that MSE scale searches run on now. */
    private Nf4Kernels searchingScales() {
        return smallUpTo(SMALL_MSE_WORK_ELEMENTS_PER_THREAD);
    }

    /** The kernels that dequantize and difference calls run on now. */
    private Nf4Kernels dequantizing() {
        return smallUpTo(SMALL_DEQUANTIZE_WORK_ELEMENTS_PER_THREAD);
    }

    /** The scalar kernels where the expected work per thread is at most {@code elements}, else the platform's. */
    private Nf4Kernels smallUpTo(long elements) {
        return elementsPerThread <= elements ? scalar : vector.get();
    }

    @Override
    public long firstNonFinite(MemorySegment src, FloatType type, long from, long to) {
        return quantizing().firstNonFinite(src, type, from, to);
    }

    @Override
    public void quantize(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                         MemorySegment codes, MemorySegment absmax) {
        quantizing().quantize(src, type, count, blockSize, firstBlock, endBlock, codes, absmax);
    }

    @Override
    public void quantizeMeasured(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                 long endBlock, MemorySegment codes, MemorySegment absmax, QuantizationError into,
                                 MemorySegment blockTerms) {
        quantizing().quantizeMeasured(src, type, count, blockSize, firstBlock, endBlock, codes, absmax, into,
                blockTerms);
    }

    @Override
    public void mseScales(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                          MemorySegment scales) {
        searchingScales().mseScales(src, type, count, blockSize, firstBlock, endBlock, scales);
    }

    @Override
    public void encode(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                       MemorySegment scales, MemorySegment codes, QuantizationError into) {
        quantizing().encode(src, type, count, blockSize, firstBlock, endBlock, scales, codes, into);
    }

    @Override
    public void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, long count, long firstBlock,
                           long endBlock, MemorySegment dst, FloatType type) {
        dequantizing().dequantize(codes, absmax, blockSize, count, firstBlock, endBlock, dst, type);
    }

    @Override
    public void difference(MemorySegment original, MemorySegment restored, long count, QuantizationError into) {
        dequantizing().difference(original, restored, count, into);
    }

    @Override
    public String name() {
        return vector.get().name();
    }
}
