package dev.qnat.safetensors;

import dev.qnat.format.DType;
import dev.qnat.format.ElementCount;
import java.lang.foreign.MemorySegment;

/**
 * A tensor of a safetensors file: name, dtype, shape and a read-only, zero-copy view of its bytes
 * (little-endian, C order). Valid while its file is open.
 *
 * @param name the tensor's name in the header, not empty
 * @param dtype its element type
 * @param shape its dimensions, outermost first (empty for a scalar); copied in and out
 * @param data its bytes, {@code data_offsets} sliced from the mapped file; read-only
 */
public record SafetensorsTensor(String name, DType dtype, long[] shape, MemorySegment data) {
    /** Takes a copy of {@code shape}, so that the caller's array can change without changing the tensor. */
    public SafetensorsTensor {
        shape = shape.clone();
    }

    /**
     * The dimensions, outermost first.
     *
     * @return a copy of the shape (empty for a scalar), which the caller may change
     */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /**
     * The product of the dimensions (1 for a scalar); see {@link ElementCount#of}.
     *
     * @return the number of elements, below {@link ElementCount#LIMIT}
     * @throws IllegalArgumentException the shape has more than {@link dev.qnat.format.TensorToWrite#MAX_RANK}
     *                                  dimensions, a negative one, or too many elements (never for one read
     *                                  from a validated file)
     */
    public long elementCount() {
        return ElementCount.of(name, shape);
    }
}
