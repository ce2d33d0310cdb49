package dev.qnat.nf4;

import java.util.Locale;

/**
 * How each block's scale is chosen (src/spec/nf4-codec.md). Either way a block is stored as one float32
 * scale and one 4-bit code per element, dequantized as {@code level * scale}, so bitsandbytes and every
 * reader load both alike.
 */
public enum ScaleRule {
    /** The block's largest magnitude, as bitsandbytes chooses it, bit for bit. */
    ABSMAX,
    /**
     * A search for the scale with the least squared reconstruction error among candidates around the
     * absmax, refined by least squares; never worse than ABSMAX on a block beyond float32 rounding.
     */
    MSE;

    /**
     * The rule's name on the command line: {@code absmax} or {@code mse}.
     *
     * @return the enum constant's name in lower case, as {@link #named} accepts it
     */
    public String cliName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * The rule named {@code name} ({@code absmax} or {@code mse}, any case).
     *
     * @param name the rule's command-line name; case and surrounding white space are ignored
     * @return the rule of that name
     * @throws IllegalArgumentException {@code name} is neither {@code absmax} nor {@code mse}
     */
    public static ScaleRule named(String name) {
        for (ScaleRule rule : values()) {
            if (rule.cliName().equalsIgnoreCase(name.strip())) {
                return rule;
            }
        }
        throw new IllegalArgumentException("scales must be absmax or mse, got '" + name + "'");
    }
}
