package dev.qnat.format;

/**
 * A file is malformed: a QNAT file, a safetensors file or index, a bitsandbytes checkpoint. The message
 * names the file, the field or tensor, its offset where there is one, and what was expected against what
 * was found. The one exception every qnat reader throws for bad input; an {@link java.io.IOException},
 * so that code which reads files handles it with the rest, but callers can tell the two apart.
 */
public class FormatException extends java.io.IOException {
    private static final long serialVersionUID = 1L;

    /**
     * A malformed file described by {@code message}.
     *
     * @param message names the file, the place in it, and what was expected against what was found
     */
    public FormatException(String message) {
        super(message);
    }

    /**
     * A malformed file described by {@code message}, found through {@code cause}.
     *
     * @param message names the file, the place in it, and what was expected against what was found
     * @param cause the exception that revealed the problem, e.g. a JSON parser's
     */
    public FormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
