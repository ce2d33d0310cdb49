package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.format.QnatFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code qnat quantize} killed with SIGKILL at random moments, over the whole run including its final
 * rename: the target is absent, the previous file byte for byte, or a complete file that verifies, and
 * the temp files of killed runs are removed by the next run in the folder.
 */
class KillTest {
    private static final int TRIALS = 24;

    @TempDir
    Path dir;

    private Process start(Path input, Path target) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Main.class.getName(), "quantize", input.toString(), "-o",
                target.toString(), "--no-stats", "--threads", "2"));
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile()).start();
    }

    private List<Path> partials() throws Exception {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> p.getFileName().toString().contains(".qnat-partial.")).toList();
        }
    }

    @Test
    void killedAtRandomMomentsLeavesNothingTorn() throws Exception {
        Path input = dir.resolve("model.safetensors");
        DemoCheckpoint.write(input, 6, 512, 8192);
        Path target = dir.resolve("model.qnat");

        long started = System.nanoTime();
        Process full = start(input, target);
        assertTrue(full.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, full.exitValue(), Files.readString(dir.resolve("child.log")));
        long fullMillis = (System.nanoTime() - started) / 1_000_000;

        SplittableRandom random = new SplittableRandom(System.nanoTime());
        int absent = 0;
        int previous = 0;
        int complete = 0;
        for (int trial = 0; trial < TRIALS; trial++) {
            if (trial == TRIALS / 2) {
                Files.delete(target); // the second half starts from no target at all
            }
            byte[] before = Files.exists(target) ? Files.readAllBytes(target) : null;
            Process child = start(input, target);
            long delay = random.nextLong(fullMillis * 6 / 5 + 1);
            if (child.waitFor(delay, TimeUnit.MILLISECONDS)) {
                assertEquals(0, child.exitValue(), "trial " + trial + " finished before the kill");
            } else {
                child.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
            }
            if (!Files.exists(target)) {
                assertEquals(null, before, "trial " + trial + ": the previous file vanished");
                absent++;
            } else if (before != null && java.util.Arrays.equals(before, Files.readAllBytes(target))) {
                previous++;
            } else {
                try (QnatFile file = QnatFile.open(target)) {
                    file.verify();
                }
                complete++;
            }
        }
        System.out.printf("kill test: %d trials, full run %d ms: %d left no target, %d the previous file, %d a new "
                + "complete file; %d temp files of killed runs before the next run%n", TRIALS, fullMillis, absent, previous,
                complete, partials().size());
        Process last = start(input, target);
        assertTrue(last.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, last.exitValue());
        assertEquals(List.of(), partials(), "the next run removes the temp files of killed runs");
        try (QnatFile file = QnatFile.open(target)) {
            file.verify();
        }
        assertArrayEquals(new int[] {TRIALS}, new int[] {absent + previous + complete});
    }
}
