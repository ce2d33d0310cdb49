package dev.qnat.nf4.kernel;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.QuantizationError;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Runs other kernels on inputs that are mapped files, through a small buffer per thread: each chunk
 * of input is copied out of the mapping first. A vector load from a mapped page that the file no longer
 * backs (truncated by another process) kills the JVM with SIGBUS, while the copy turns the same fault
 * into an {@code InternalError} that the writers report as an I/O error. The chunk stays in cache for the
 * kernel, so the input is still read from memory once. Outputs are written in place.
 */
final class StagedNf4Kernels implements Nf4Kernels {
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Input bytes per chunk: 64 KiB, in L2 with the kernel's output. */
    private static final int CHUNK_BYTES = 1 << 16;

    private static final ThreadLocal<Buffers> BUFFERS = ThreadLocal.withInitial(Buffers::new);

    private final Nf4Kernels inner;

    StagedNf4Kernels(Nf4Kernels inner) {
        this.inner = inner;
    }

    /**
     * Two growable buffers of one thread, off-heap: input elements (or codes) and absmax values. (Heap
     * arrays were tried first: the vector kernels on a byte[] segment ran the 444 MB command 1.8 s slower.)
     */
    private static final class Buffers {
        private MemorySegment values = allocate(CHUNK_BYTES);
        private MemorySegment scales = allocate(CHUNK_BYTES);
        private short[] halves = new short[0];
        private float[] floats = new float[0];

        private static MemorySegment allocate(long bytes) {
            return Arena.ofAuto().allocate(bytes, 64);
        }

        MemorySegment values(MemorySegment from, long offset, long length) {
            if (values.byteSize() < length) {
                values = allocate(length);
            }
            return copy(from, offset, values, length);
        }

        MemorySegment scales(MemorySegment from, long offset, long length) {
            if (scales.byteSize() < length) {
                scales = allocate(length);
            }
            return copy(from, offset, scales, length);
        }

        /**
         * F16 elements {@code [from, from + n)} of {@code src} as F32, which the kernels read at BF16's speed:
         * C2 turns this loop of {@code Float.float16ToFloat} on arrays into vector conversions (0.09 ns per
         * element), where the kernels' own F16 lanes cost 2 ns per element quantized. The conversion is
         * exact, so the kernels see the same values and write the same bytes.
         */
        MemorySegment f16AsF32(MemorySegment src, long from, int n) {
            if (halves.length < n) {
                halves = new short[n];
                floats = new float[n];
            }
            MemorySegment.copy(src, HALF, 2 * from, halves, 0, n);
            for (int i = 0; i < n; i++) {
                floats[i] = Float.float16ToFloat(halves[i]);
            }
            if (values.byteSize() < 4L * n) {
                values = allocate(4L * n);
            }
            MemorySegment staged = values.asSlice(0, 4L * n);
            MemorySegment.copy(floats, 0, staged, FLOAT, 0, n);
            return staged;
        }

        private static MemorySegment copy(MemorySegment from, long offset, MemorySegment to, long length) {
            MemorySegment staged = to.asSlice(0, length);
            MemorySegment.copy(from, offset, staged, 0, length);
            return staged;
        }
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public long firstNonFinite(MemorySegment src, FloatType type, long from, long to) {
        long perChunk = CHUNK_BYTES / type.byteSize();
        Buffers buffers = BUFFERS.get();
        for (long start = from; start < to; start += perChunk) {
            long n = Math.min(perChunk, to - start);
            long found = inner.firstNonFinite(buffers.values(src, start * type.byteSize(), n * type.byteSize()), type, 0, n);
            if (found >= 0) {
                return start + found;
            }
        }
        return -1;
    }

    @Override
    public void quantize(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                         MemorySegment codes, MemorySegment absmax) {
        inChunks(src, type, count, blockSize, firstBlock, endBlock, (chunk, staged, n, first, end) -> inner.quantize(chunk,
                staged, n, blockSize, 0, end - first, codes.asSlice(first * blockSize / 2), absmax.asSlice(4 * first)));
    }

    @Override
    public void quantizeMeasured(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                 long endBlock, MemorySegment codes, MemorySegment absmax, QuantizationError into,
                                 MemorySegment blockTerms) {
        inChunks(src, type, count, blockSize, firstBlock, endBlock, (chunk, staged, n, first, end) -> inner.quantizeMeasured(
                chunk, staged, n, blockSize, 0, end - first, codes.asSlice(first * blockSize / 2),
                absmax.asSlice(4 * first), into, blockTerms == null ? null : blockTerms.asSlice(12 * first)));
    }

    @Override
    public void mseScales(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                          MemorySegment scales) {
        inChunks(src, type, count, blockSize, firstBlock, endBlock, (chunk, staged, n, first, end) -> inner.mseScales(chunk,
                staged, n, blockSize, 0, end - first, scales.asSlice(4 * first)));
    }

    @Override
    public void encode(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock, long endBlock,
                       MemorySegment scales, MemorySegment codes, QuantizationError into) {
        Buffers buffers = BUFFERS.get();
        inChunks(src, type, count, blockSize, firstBlock, endBlock, (chunk, staged, n, first, end) -> inner.encode(chunk,
                staged, n, blockSize, 0, end - first, scales.isMapped() ? buffers.scales(scales, 4 * first, 4 * (end - first))
                        : scales.asSlice(4 * first), codes.asSlice(first * blockSize / 2), into));
    }

    /**
     * What runs on one staged chunk: its {@code n} elements, of type {@code staged}, are blocks
     * {@code [first, end)} of the input.
     */
    @FunctionalInterface
    private interface ChunkWork {
        void run(MemorySegment chunk, FloatType staged, long n, long first, long end);
    }

    /**
     * Copies blocks {@code [firstBlock, endBlock)} of {@code src} chunk by chunk and runs {@code work} on each;
     * F16 chunks are staged as F32 ({@link Buffers#f16AsF32}).
     */
    private static void inChunks(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                                 long endBlock, ChunkWork work) {
        long blocksPerChunk = Math.max(1, CHUNK_BYTES / type.byteSize() / blockSize);
        Buffers buffers = BUFFERS.get();
        for (long first = firstBlock; first < endBlock; first += blocksPerChunk) {
            long end = Math.min(endBlock, first + blocksPerChunk);
            long from = first * blockSize;
            long n = Math.min(count, end * blockSize) - from;
            if (type == FloatType.F16) {
                work.run(buffers.f16AsF32(src, from, (int) n), FloatType.F32, n, first, end);
            } else {
                work.run(buffers.values(src, type.byteSize() * from, type.byteSize() * n), type, n, first, end);
            }
        }
    }

    @Override
    public void difference(MemorySegment original, MemorySegment restored, long count, QuantizationError into) {
        long perChunk = CHUNK_BYTES / 4;
        Buffers buffers = BUFFERS.get();
        for (long from = 0; from < count; from += perChunk) {
            long n = Math.min(perChunk, count - from);
            MemorySegment a = original.isMapped() ? buffers.values(original, 4 * from, 4 * n) : original.asSlice(4 * from);
            MemorySegment b = restored.isMapped() ? buffers.scales(restored, 4 * from, 4 * n) : restored.asSlice(4 * from);
            inner.difference(a, b, n, into);
        }
    }

    @Override
    public void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, long count, long firstBlock,
                           long endBlock, MemorySegment dst, FloatType type) {
        long blocksPerChunk = Math.max(1, 2L * CHUNK_BYTES / blockSize);
        Buffers buffers = BUFFERS.get();
        for (long first = firstBlock; first < endBlock; first += blocksPerChunk) {
            long end = Math.min(endBlock, first + blocksPerChunk);
            long from = first * blockSize;
            long n = Math.min(count, end * blockSize) - from;
            MemorySegment chunkCodes = codes.isMapped() ? buffers.values(codes, from / 2, (n + 1) / 2)
                    : codes.asSlice(from / 2);
            MemorySegment chunkAbsmax = absmax.isMapped() ? buffers.scales(absmax, 4 * first, 4 * (end - first))
                    : absmax.asSlice(4 * first);
            inner.dequantize(chunkCodes, chunkAbsmax, blockSize, n, 0, end - first, dst.asSlice(type.byteSize() * from), type);
        }
    }
}
