package dev.qnat.bnb;

import dev.qnat.format.TensorToWrite;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * The values of one NF4 tensor of a bitsandbytes checkpoint, as {@link BitsandbytesImport#plan} finds
 * it: the absmax values are reconstructed once (double quantization undone), the codes are turned to
 * QNAT's nibble order a chunk at a time and dequantized. For commands that read such a checkpoint
 * without importing it (dequantize, compare).
 */
public final class BitsandbytesTensor implements AutoCloseable {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Code bytes swapped per step: the chunk stays in cache for the dequantization. */
    private static final long CHUNK_BYTES = 1 << 16;

    private final TensorToWrite tensor;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment absmax;

    /**
     * Prepares a tensor for reading: with double quantization its absmax values are reconstructed here,
     * into memory this object holds until it is closed.
     *
     * @param tensor an NF4 tensor of a bitsandbytes plan (its {@link TensorToWrite#encoded()} set)
     * @throws IllegalArgumentException {@code tensor} has no encoded sections (RAW, or NF4 still to be
     *                                  quantized), or its codes are in QNAT's nibble order
     */
    public BitsandbytesTensor(TensorToWrite tensor) {
        TensorToWrite.Encoded encoded = tensor.encoded();
        if (encoded == null || !encoded.highNibbleFirst()) {
            throw new IllegalArgumentException("tensor '" + tensor.name() + "' is not a bitsandbytes NF4 tensor");
        }
        this.tensor = tensor;
        long blocks = Nf4.blockCount(tensor.elementCount(), tensor.blockSize());
        if (encoded.nestedScales() == null) {
            absmax = encoded.scales();
        } else {
            absmax = arena.allocate(4 * blocks, 64);
            DoubleQuantization.dequantize(encoded.scales(), encoded.nestedScales(), encoded.dqOffset(),
                    encoded.table().toArray(F32), blocks, absmax);
        }
    }

    /**
     * The tensor read.
     *
     * @return the NF4 tensor given to the constructor, whose encoded sections are read
     */
    public TensorToWrite tensor() {
        return tensor;
    }

    /**
     * The f32 absmax of every block.
     *
     * @return one little-endian f32 per block, in block order; valid until this is closed
     */
    public MemorySegment absmax() {
        return absmax;
    }

    /**
     * Writes elements {@code [from, from + n)} as {@code type} into {@code dst}, which holds {@code n}
     * of them; {@code from} is a multiple of the block size.
     *
     * @param from the index of the first element to read, a multiple of the block size
     * @param dst where the values go: {@code n * type.byteSize()} bytes for {@code n} elements, which must not
     *            run past the tensor's end
     * @param type the float type to write
     * @throws IllegalArgumentException {@code from} is not a multiple of the block size
     * @throws IndexOutOfBoundsException the elements asked for run past the end of the tensor
     */
    public void read(long from, MemorySegment dst, FloatType type) {
        int blockSize = tensor.blockSize();
        if (from % blockSize != 0) {
            throw new IllegalArgumentException("reads start at a block, " + from + " is not a multiple of " + blockSize);
        }
        long n = dst.byteSize() / type.byteSize();
        long elementsPerChunk = Math.max(blockSize, 2 * CHUNK_BYTES / blockSize * blockSize);
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment codes = scratch.allocate(Nf4.packedSize(Math.min(n, elementsPerChunk)));
            for (long done = 0; done < n; done += elementsPerChunk) {
                long length = Math.min(elementsPerChunk, n - done);
                long start = from + done;
                MemorySegment chunkCodes = codes.asSlice(0, Nf4.packedSize(length));
                Nf4.swapNibbles(tensor.encoded().codes().asSlice(start / 2, chunkCodes.byteSize()), chunkCodes);
                Nf4.dequantize(chunkCodes, absmax.asSlice(4 * (start / blockSize), 4 * Nf4.blockCount(length, blockSize)),
                        blockSize, dst.asSlice(type.byteSize() * done, type.byteSize() * length), type);
            }
        }
    }

    /** Frees the reconstructed absmax values; {@link #absmax()} and {@link #read} fail after this. */
    @Override
    public void close() {
        arena.close();
    }
}
