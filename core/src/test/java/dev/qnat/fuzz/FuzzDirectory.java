package dev.qnat.fuzz;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * A temp folder that a fuzz target keeps for the whole run (its inputs are written there call after
 * call), deleted with everything in it when the JVM exits. {@code File.deleteOnExit} removes only an
 * empty folder, so every CI run used to leave these folders behind in /tmp.
 */
public final class FuzzDirectory {
    private FuzzDirectory() {}

    public static Path create(String prefix) {
        try {
            Path dir = Files.createTempDirectory(prefix).toRealPath();
            Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(dir)));
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            // Deepest first; links are deleted, never followed (Files.walk does not follow them).
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | UncheckedIOException e) {
            // best effort at exit
        }
    }
}
