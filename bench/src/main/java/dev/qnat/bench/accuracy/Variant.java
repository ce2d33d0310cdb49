package dev.qnat.bench.accuracy;

import dev.qnat.nf4.ScaleRule;

/**
 * One way to store the model's weight matrices in NF4: block size, whether the block scales are
 * double-quantized, and how each block's scale is chosen.
 */
public record Variant(int blockSize, boolean doubleQuant, ScaleRule scales) {
    /** The default of {@code qnat quantize}: block 64, double quantization, absmax scales. */
    public static final Variant DEFAULT = new Variant(64, true, ScaleRule.ABSMAX);

    /** This variant with other scales. */
    public Variant withScales(ScaleRule rule) {
        return new Variant(blockSize, doubleQuant, rule);
    }

    /** A short label for tables, e.g. "NF4 b64 DQ absmax". */
    public String label() {
        return "NF4 b" + blockSize + (doubleQuant ? " DQ" : "") + " " + scales.cliName();
    }
}
