package dev.qnat;

import java.io.File;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** What tests need to start a JVM of their own. */
public final class TestJvm {
    private TestJvm() {}

    /**
     * A class path holding core, its test classes and their libraries, for a child JVM: whether this JVM
     * runs the tests on the class path or, as surefire does, patched into the module on the module path
     * (then {@code java.class.path} holds only surefire, and the test classes are on neither path).
     */
    public static String classPath() {
        List<String> parts = new ArrayList<>();
        for (String property : List.of("java.class.path", "jdk.module.path")) {
            String value = System.getProperty(property, "");
            if (!value.isEmpty()) {
                parts.add(value);
            }
        }
        try {
            parts.add(Path.of(TestJvm.class.getProtectionDomain().getCodeSource().getLocation().toURI()).toString());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
        return String.join(File.pathSeparator, parts);
    }
}
