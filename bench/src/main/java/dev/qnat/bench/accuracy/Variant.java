package dev.qnat.bench.accuracy;

/**
 * One way to store the model's weight matrices in NF4: block size, whether the block scales are
 * double-quantized, and how each block's scale is chosen.
 */
public record Variant(int blockSize, boolean doubleQuant, Scales scales) {
    /** How the block scales are chosen. */
    public enum Scales {
        /** The block's largest magnitude, as bitsandbytes does. */
        ABSMAX
    }

    /** The default of {@code qnat quantize}: block 64, double quantization, absmax scales. */
    public static final Variant DEFAULT = new Variant(64, true, Scales.ABSMAX);

    /** A short label for tables, e.g. "NF4 b64 DQ absmax". */
    public String label() {
        return "NF4 b" + blockSize + (doubleQuant ? " DQ" : "") + " " + scales.name().toLowerCase(java.util.Locale.ROOT);
    }
}
