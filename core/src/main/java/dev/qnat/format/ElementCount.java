package dev.qnat.format;

import java.util.Arrays;

/**
 * The one rule for a tensor's element count, the product of its dimensions, that every reader and
 * writer applies: it stays below 2^62, so that sizes in bits and nibbles fit a long too.
 */
public final class ElementCount {
    /** Element counts stay below this. */
    public static final long LIMIT = 1L << 62;

    private ElementCount() {}

    /**
     * The count after one more dimension: {@code count * dim}, or -1 when that reaches {@link #LIMIT}.
     * A zero makes it 0 whatever the other factor; both arguments are non-negative.
     *
     * @param count the element count so far, below {@link #LIMIT}
     * @param dim the next dimension
     * @return {@code count * dim}, or -1 if it would be {@link #LIMIT} or more
     */
    public static long times(long count, long dim) {
        if (count == 0 || dim == 0) {
            return 0;
        }
        return count > (LIMIT - 1) / dim ? -1 : count * dim;
    }

    /**
     * The product of the dimensions (1 for a scalar), checked as the writer checks it: at most
     * {@link TensorToWrite#MAX_RANK} dimensions, none negative, fewer than 2^62 elements; otherwise an
     * IllegalArgumentException naming the tensor.
     *
     * @param name the tensor's name, for the message
     * @param shape the dimensions; empty for a scalar
     * @return the number of elements, from 0 to {@code LIMIT - 1}
     * @throws IllegalArgumentException if {@code shape} has more than {@link TensorToWrite#MAX_RANK} dimensions,
     *         a negative one, or a product of {@link #LIMIT} or more
     */
    public static long of(String name, long[] shape) {
        if (shape.length > TensorToWrite.MAX_RANK) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + shape.length + " dimensions, more than "
                    + TensorToWrite.MAX_RANK);
        }
        long count = 1;
        for (long dim : shape) {
            if (dim < 0) {
                throw new IllegalArgumentException("tensor '" + name + "' has a negative dimension: "
                        + Arrays.toString(shape));
            }
            count = times(count, dim);
            if (count < 0) {
                throw new IllegalArgumentException("tensor '" + name + "' shape " + Arrays.toString(shape)
                        + " has too many elements");
            }
        }
        return count;
    }
}
