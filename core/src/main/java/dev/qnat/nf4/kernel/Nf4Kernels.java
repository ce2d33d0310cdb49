package dev.qnat.nf4.kernel;

import dev.qnat.nf4.FloatType;
import java.lang.foreign.MemorySegment;

/**
 * The NF4 block kernels. Internal: callers go through {@link dev.qnat.nf4.Nf4}, which validates
 * arguments; kernels trust them. Elements are little-endian in their {@link FloatType}; codes hold two
 * 4-bit codes per byte, element 2i in the low nibble and 2i+1 in the high one; block {@code b} starts at
 * element {@code b * blockSize} (an even number, so at a byte boundary of the codes) and absmax
 * {@code b} is the little-endian float at byte {@code 4 * b}. Implementations agree bit for bit.
 */
public interface Nf4Kernels {

    /** Index of the first NaN or infinity among elements {@code [from, to)}, or -1 if there is none. */
    long firstNonFinite(MemorySegment src, FloatType type, long from, long to);

    /**
     * Quantizes blocks {@code [firstBlock, endBlock)} of a finite input of {@code count} elements,
     * writing their codes and absmax values.
     */
    void quantize(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                  MemorySegment codes, MemorySegment absmax);

    /** Reconstructs blocks {@code [firstBlock, endBlock)} of {@code count} elements into {@code dst}. */
    void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, long count, long firstBlock,
                    long endBlock, MemorySegment dst, FloatType type);

    /** A short name for logs and benchmarks, e.g. {@code scalar} or {@code panama-512}. */
    String name();
}
