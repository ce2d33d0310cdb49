package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class NameGlobTest {
    private static boolean matches(String glob, String name) {
        return NameGlob.compile(glob).matches(name);
    }

    @Test
    void wildcardsMatchAnyCharacterSlashIncluded() {
        assertTrue(matches("*.mlp.*", "model.layers.0.mlp.up_proj.weight"));
        assertFalse(matches("*.mlp.*", "model.layers.0.self_attn.q_proj.weight"));
        assertTrue(matches("model*weight", "model/layers/0/weight"));
        assertTrue(matches("a?c", "a/c"));
        assertFalse(matches("a?c", "abbc"));
        assertTrue(matches("*", ""));
        assertTrue(matches("a*", "a\nb"), "* crosses line breaks");
    }

    @Test
    void namesThatAreNoPathsMatchAsStrings() {
        assertTrue(matches("caf\u00e9.*", "caf\u00e9.weight"));
        assertTrue(matches("a?b", "a\u0000b"));
        assertTrue(matches("a\u0000*", "a\u0000b"));
        assertTrue(matches("x?y", "x\ud800y"), "a lone surrogate is one character");
        assertTrue(matches("x\ud800*", "x\ud800y"));
        assertTrue(matches("?", "\ud83d\ude00"), "a surrogate pair is one character");
    }

    @Test
    void classes() {
        assertTrue(matches("layer.[0-2].w", "layer.1.w"));
        assertFalse(matches("layer.[0-2].w", "layer.3.w"));
        assertTrue(matches("[abc]", "b"));
        assertFalse(matches("[!abc]", "b"));
        assertTrue(matches("[^abc]", "d"));
        assertTrue(matches("[]a]", "]"));
        assertTrue(matches("[a-]", "-"));
        assertTrue(matches("[\\]]", "]"));
        assertTrue(matches("[.*+(]", "+"), "regex characters are literal in a class");
        assertFalse(matches("[.*+(]", "x"));
        assertTrue(matches("[!/]*", "a.b"));
        assertFalse(matches("[!/]*", "/a"));
    }

    @Test
    void alternativesAndEscapes() {
        assertTrue(matches("*.{q,k}_proj.*", "l.k_proj.weight"));
        assertFalse(matches("*.{q,k}_proj.*", "l.v_proj.weight"));
        assertTrue(matches("{a,b{c,d}}", "bd"));
        assertTrue(matches("{a,}x", "x"));
        assertTrue(matches("a,b}", "a,b}"), "outside braces , and } are literal");
        assertTrue(matches("\\*", "*"));
        assertFalse(matches("\\*", "x"));
        assertTrue(matches("\\{a\\}", "{a}"));
        assertTrue(matches("a.b(c)+$^|", "a.b(c)+$^|"), "regex characters are literal");
        assertFalse(matches("a.b", "axb"));
        assertTrue(matches("\\Q*\\E", "QzzE"), "\\Q and \\E of the regex mean nothing");
    }

    @Test
    void badSyntaxNamesTheGlobAndWhere() {
        for (String bad : new String[] {"a[bc", "[!", "x{a,b", "trailing\\", "[z-a]", "[a\\"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NameGlob.compile(bad), bad);
            assertTrue(e.getMessage().startsWith("the glob '" + bad + "' "), e.getMessage());
            assertTrue(e.getMessage().contains("(at character "), e.getMessage());
        }
    }
}
