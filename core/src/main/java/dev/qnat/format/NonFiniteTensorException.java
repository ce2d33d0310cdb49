package dev.qnat.format;

import dev.qnat.nf4.NonFiniteValueException;

/** A tensor to quantize holds a NaN or an infinity; the file being written was abandoned. */
public final class NonFiniteTensorException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final String tensor;
    private final long index;

    public NonFiniteTensorException(String tensor, NonFiniteValueException cause) {
        super("tensor '" + tensor + "': " + cause.getMessage(), cause);
        this.tensor = tensor;
        this.index = cause.index();
    }

    /** The tensor's name. */
    public String tensor() {
        return tensor;
    }

    /** The index of the first bad element found, over the tensor's flattened elements. */
    public long index() {
        return index;
    }
}
