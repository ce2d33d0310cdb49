package dev.qnat.format;

/**
 * The rule every qnat writer (QNAT and safetensors) applies to tensor names: not empty, and valid
 * UTF-16, so that it encodes to UTF-8 as it is. A lone surrogate would be written as '?', and the
 * file read back would hold another name, or the same name twice.
 */
public final class TensorNames {
    private TensorNames() {}

    /**
     * Returns {@code name}; IllegalArgumentException if it is empty or holds a lone surrogate.
     *
     * @param name the tensor name to check
     * @return {@code name} itself, unchanged
     * @throws IllegalArgumentException if {@code name} is empty or holds a surrogate that is not part of a pair
     */
    public static String check(String name) {
        if (name.isEmpty()) {
            throw new IllegalArgumentException("a tensor name is empty");
        }
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < name.length() && Character.isLowSurrogate(name.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new IllegalArgumentException("tensor '" + escapeSurrogates(name) + "' has a lone surrogate "
                        + escape(c) + " at character " + i + ", which UTF-8 cannot encode");
            }
        }
        return name;
    }

    /** {@code name} with each lone surrogate as \\uXXXX, printable whatever the output's encoding does with them. */
    private static String escapeSurrogates(String name) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < name.length() && Character.isLowSurrogate(name.charAt(i + 1))) {
                s.append(c).append(name.charAt(++i));
            } else {
                s.append(Character.isSurrogate(c) ? escape(c) : String.valueOf(c));
            }
        }
        return s.toString();
    }

    private static String escape(char c) {
        return String.format("\\u%04X", (int) c);
    }
}
