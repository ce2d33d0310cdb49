package dev.qnat.cli;

import java.util.regex.Pattern;

/**
 * A glob matched against a tensor name as a string, whatever the name holds ('/', NUL, any Unicode,
 * a lone surrogate) and whatever the locale: {@code *} any sequence, {@code ?} one character,
 * {@code [abc]}, {@code [a-z]} and {@code [!a]} (or {@code [^a]}) one character of a class,
 * {@code {a,b}} one of the alternatives (which may nest), {@code \} makes the next character literal.
 * Unlike a path glob, {@code *} and {@code ?} match '/' too.
 */
final class NameGlob {
    private final String glob;
    private final Pattern regex;

    private NameGlob(String glob, Pattern regex) {
        this.glob = glob;
        this.regex = regex;
    }

    /** Compiles {@code glob}; IllegalArgumentException naming it and the position of a syntax error. */
    static NameGlob compile(String glob) {
        StringBuilder regex = new StringBuilder();
        StringBuilder literal = new StringBuilder();
        int groups = 0;
        int i = 0;
        while (i < glob.length()) {
            int c = glob.codePointAt(i);
            int next = i + Character.charCount(c);
            boolean special = c == '*' || c == '?' || c == '[' || c == '{' || groups > 0 && (c == ',' || c == '}');
            if (!special) {
                int[] member = literalAt(glob, i);
                literal.appendCodePoint(member[0]);
                i = member[1];
                continue;
            }
            if (!literal.isEmpty()) {
                regex.append(Pattern.quote(literal.toString()));
                literal.setLength(0);
            }
            switch (c) {
                case '*' -> regex.append(".*");
                case '?' -> regex.append('.');
                case '{' -> {
                    regex.append("(?:");
                    groups++;
                }
                case ',' -> regex.append('|');
                case '}' -> {
                    regex.append(')');
                    groups--;
                }
                default -> next = characterClass(glob, i, regex);
            }
            i = next;
        }
        if (groups > 0) {
            throw error(glob, glob.length(), "has a { without its }");
        }
        if (!literal.isEmpty()) {
            regex.append(Pattern.quote(literal.toString()));
        }
        return new NameGlob(glob, Pattern.compile(regex.toString(), Pattern.DOTALL));
    }

    /** Appends the class that starts with the '[' at {@code start}; returns the index after its ']'. */
    private static int characterClass(String glob, int start, StringBuilder regex) {
        int i = start + 1;
        regex.append('[');
        if (i < glob.length() && (glob.charAt(i) == '!' || glob.charAt(i) == '^')) {
            regex.append('^');
            i++;
        }
        boolean first = true;
        while (true) {
            if (i == glob.length()) {
                throw error(glob, start, "has a [ without its ]");
            }
            int c = glob.codePointAt(i);
            if (c == ']' && !first) {
                regex.append(']');
                return i + 1;
            }
            first = false;
            int[] read = literalAt(glob, i);
            int low = read[0];
            i = read[1];
            if (i + 1 < glob.length() && glob.charAt(i) == '-' && glob.charAt(i + 1) != ']') {
                int[] high = literalAt(glob, i + 1);
                if (high[0] < low) {
                    throw error(glob, i, "has the range " + new StringBuilder().appendCodePoint(low).append('-')
                            .appendCodePoint(high[0]) + ", which runs backwards");
                }
                regex.append(escape(low)).append('-').append(escape(high[0]));
                i = high[1];
            } else {
                regex.append(escape(low));
            }
        }
    }

    /** The character at {@code i} ({@code \} makes it the one after), and the index after it. */
    private static int[] literalAt(String glob, int i) {
        int c = glob.codePointAt(i);
        int next = i + Character.charCount(c);
        if (c == '\\') {
            if (next == glob.length()) {
                throw error(glob, i, "ends with a lone \\");
            }
            c = glob.codePointAt(next);
            next += Character.charCount(c);
        }
        return new int[] {c, next};
    }

    /** A code point as a regex escape, so that no character means anything inside the class. */
    private static String escape(int codePoint) {
        return "\\x{" + Integer.toHexString(codePoint) + "}";
    }

    private static IllegalArgumentException error(String glob, int index, String what) {
        return new IllegalArgumentException("the glob '" + glob + "' " + what + " (at character " + index + ")");
    }

    boolean matches(String name) {
        return regex.matcher(name).matches();
    }

    @Override
    public String toString() {
        return glob;
    }
}
