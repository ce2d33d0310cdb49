package dev.qnat.format;

import dev.qnat.nf4.NonFiniteValueException;

/** A tensor to quantize holds a NaN or an infinity; the file being written was abandoned. */
public final class NonFiniteTensorException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    /** The tensor's name. */
    private final String tensor;
    /** The index of the first bad element found, over the tensor's flattened elements. */
    private final long index;

    /**
     * Reports the bad value {@code cause} found in the elements of {@code tensor}.
     *
     * @param tensor the tensor's name, put in the message
     * @param cause the codec's exception, whose message and index this one carries
     */
    public NonFiniteTensorException(String tensor, NonFiniteValueException cause) {
        super("tensor '" + tensor + "': " + cause.getMessage(), cause);
        this.tensor = tensor;
        this.index = cause.index();
    }

    /**
     * The tensor's name.
     *
     * @return the name of the tensor that holds the bad value
     */
    public String tensor() {
        return tensor;
    }

    /**
     * The index of the first bad element found, over the tensor's flattened elements.
     *
     * @return the element's index, from 0, in the tensor's row-major order
     */
    public long index() {
        return index;
    }
}
