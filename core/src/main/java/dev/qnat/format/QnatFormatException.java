package dev.qnat.format;

/**
 * A file is not a valid QNAT file (or safetensors file, for the interop readers): the message names the
 * file, the field or tensor, its offset, and what was expected against what was found.
 */
public class QnatFormatException extends Exception {
    public QnatFormatException(String message) {
        super(message);
    }

    public QnatFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
