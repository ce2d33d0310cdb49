package dev.qnat.nf4.kernel;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.QuantizationError;
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

    /**
     * Chooses the scales of blocks {@code [firstBlock, endBlock)} by the MSE rule (src/spec/nf4-codec.md)
     * and writes them, and only them. A block holding a NaN or an infinity gets a scale that is not finite.
     */
    void mseScales(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                   MemorySegment scales);

    /**
     * Writes the codes of blocks {@code [firstBlock, endBlock)} of a finite input against the scales already
     * in {@code scales} (the codec's rule with each scale in place of the absmax); where {@code into} is not
     * null, adds their error to it.
     */
    void encode(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                MemorySegment scales, MemorySegment codes, QuantizationError into);

    /** Reconstructs blocks {@code [firstBlock, endBlock)} of {@code count} elements into {@code dst}. */
    void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, long count, long firstBlock,
                    long endBlock, MemorySegment dst, FloatType type);

    /**
     * Quantizes as {@link #quantize} does, with the same codes and absmax, and adds to {@code into} the
     * error of each block as it is written (see {@link QuantizationError} for the definitions). Where
     * {@code blockTerms} is not null, also stores per block, as three floats at byte
     * {@code 12 * block}: {@code sum x_i * l_i}, {@code sum l_i^2} (l_i the level) and {@code max |d_i|},
     * from which the error at another absmax of the block follows (double quantization stores one).
     */
    void quantizeMeasured(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                          MemorySegment codes, MemorySegment absmax, QuantizationError into, MemorySegment blockTerms);

    /** Adds to {@code into} the error of {@code count} F32 values {@code restored} against {@code original}. */
    void difference(MemorySegment original, MemorySegment restored, long count, QuantizationError into);

    /** A short name for logs and benchmarks, e.g. {@code scalar} or {@code panama-512}. */
    String name();
}
