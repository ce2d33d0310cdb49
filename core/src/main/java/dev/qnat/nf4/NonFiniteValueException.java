package dev.qnat.nf4;

/** Thrown when the input of a quantization holds a NaN or an infinity; nothing has been written then. */
public final class NonFiniteValueException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    private final long index;
    private final float value;

    public NonFiniteValueException(long index, float value) {
        super("element " + index + " is " + value + " (bits 0x" + Integer.toHexString(Float.floatToRawIntBits(value))
                + "); NF4 needs finite input, nothing was written");
        this.index = index;
        this.value = value;
    }

    /** Index of the first non-finite element, counted over the flattened input. */
    public long index() {
        return index;
    }

    /** The offending value (NaN or an infinity), as a float. */
    public float value() {
        return value;
    }
}
