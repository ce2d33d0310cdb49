package dev.qnat.safetensors;

import dev.qnat.format.DType;
import dev.qnat.format.ElementCount;
import java.lang.foreign.MemorySegment;

/**
 * A tensor of a safetensors file: name, dtype, shape and a read-only, zero-copy view of its bytes
 * (little-endian, C order). Valid while its file is open.
 */
public record SafetensorsTensor(String name, DType dtype, long[] shape, MemorySegment data) {
    public SafetensorsTensor {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** The product of the dimensions (1 for a scalar); see {@link ElementCount#of}. */
    public long elementCount() {
        return ElementCount.of(name, shape);
    }
}
