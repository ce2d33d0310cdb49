package dev.qnat.nf4;

/** Thrown when the input of a quantization holds a NaN or an infinity; nothing has been written then. */
public final class NonFiniteValueException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    /** Index of the first non-finite element, counted over the flattened input. */
    private final long index;
    /** That element's value: NaN or an infinity. */
    private final float value;

    /**
     * Reports the non-finite element {@code index} of a quantization's input.
     *
     * @param index index of the first non-finite element, counted over the flattened input
     * @param value its value (NaN or an infinity), as a float; the message shows its bits too
     */
    public NonFiniteValueException(long index, float value) {
        super("element " + index + " is " + value + " (bits 0x" + Integer.toHexString(Float.floatToRawIntBits(value))
                + "); NF4 needs finite input, nothing was written");
        this.index = index;
        this.value = value;
    }

    /**
     * Index of the first non-finite element, counted over the flattened input.
     *
     * @return the element's index, from 0
     */
    public long index() {
        return index;
    }

    /**
     * The offending value (NaN or an infinity), as a float.
     *
     * @return the element's value; F16 and BF16 elements widened exactly to float
     */
    public float value() {
        return value;
    }
}
