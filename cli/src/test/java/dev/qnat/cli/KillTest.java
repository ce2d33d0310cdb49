package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.qnat.format.Encoding;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code qnat quantize} killed with SIGKILL: at random moments over the whole run, and at the final
 * rename (just before and just after it, by the writer's {@code qnat.io.pauseAt} hook). Each trial picks
 * block size 64 or 128 at random, so the previous file and the new one differ in their tensors (and
 * always in their creation time): afterwards the target must be absent (if there was none), the
 * previous file byte for byte, or a file that verifies and holds exactly the tensors of a complete run
 * at the killed run's block size; temp files of killed runs are removed by the next run in the folder.
 */
class KillTest {
    private static final int RANDOM_TRIALS = 24;
    private static final int RENAME_TRIALS = 4; // each before and after the rename

    @TempDir
    Path dir;

    private Process start(Path input, Path target, int blockSize, String pauseAt) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(List.of(System.getProperty("qnat.jvm.args").split(" ")));
        if (pauseAt != null) {
            command.add("-Dqnat.io.pauseAt=" + pauseAt);
        }
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), "quantize",
                input.toString(), "-o", target.toString(), "--no-stats", "--threads", "2", "--block-size",
                Integer.toString(blockSize)));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        if (pauseAt == null) {
            builder.redirectOutput(dir.resolve("child.log").toFile());
        }
        return builder.start();
    }

    private List<Path> partials() throws Exception {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(p -> p.getFileName().toString().contains(".qnat-partial.")).toList();
        }
    }

    private void completeRun(Path input, Path target, int blockSize) throws Exception {
        Process run = start(input, target, blockSize, null);
        assertTrue(run.waitFor(120, TimeUnit.SECONDS));
        assertEquals(0, run.exitValue(), Files.readString(dir.resolve("child.log")));
    }

    /** Whether {@code file} verifies and holds the same tensors, byte for byte, as {@code reference}. */
    private static boolean sameTensors(Path file, Path reference) throws Exception {
        try (QnatFile a = QnatFile.open(file); QnatFile b = QnatFile.open(reference)) {
            a.verify();
            if (a.tensors().size() != b.tensors().size()) {
                return false;
            }
            for (int i = 0; i < a.tensors().size(); i++) {
                QnatTensor x = a.tensors().get(i);
                QnatTensor y = b.tensors().get(i);
                if (!x.name().equals(y.name()) || x.blockSize() != y.blockSize() || x.data().mismatch(y.data()) != -1
                        || (x.encoding() == Encoding.NF4 && x.scales().mismatch(y.scales()) != -1)) {
                    return false;
                }
            }
            return true;
        }
    }

    /** Waits until the child says it paused at its hook, then kills it there. */
    private static void killAtPause(Process child, String pauseAt) throws Exception {
        try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
            StringBuilder seen = new StringBuilder();
            for (String line; (line = out.readLine()) != null; ) {
                seen.append(line).append('\n');
                if (line.equals("qnat: paused " + pauseAt)) {
                    child.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
                    return;
                }
            }
            fail("the child ended without pausing at " + pauseAt + ":\n" + seen);
        }
    }

    @Test
    void killedAnywhereLeavesNothingTorn() throws Exception {
        Path input = dir.resolve("model.safetensors");
        DemoCheckpoint.write(input, 6, 512, 8192);
        Path target = dir.resolve("model.qnat");
        Path reference64 = dir.resolve("reference64.qnat");
        Path reference128 = dir.resolve("reference128.qnat");
        long started = System.nanoTime();
        completeRun(input, reference128, 128);
        long fullMillis = (System.nanoTime() - started) / 1_000_000;
        completeRun(input, reference64, 64);
        assertFalse(sameTensors(reference64, reference128), "the two block sizes must give different tensors");
        Files.copy(reference64, target);

        SplittableRandom random = new SplittableRandom(System.nanoTime());
        Map<String, Integer> counts = new TreeMap<>();
        int trials = RANDOM_TRIALS + 2 * RENAME_TRIALS;
        for (int trial = 0; trial < trials; trial++) {
            if (trial == RANDOM_TRIALS / 2) {
                Files.delete(target); // from here on, some trials start from no target at all
            }
            byte[] before = Files.exists(target) ? Files.readAllBytes(target) : null;
            int blockSize = random.nextBoolean() ? 64 : 128;
            String pauseAt = trial < RANDOM_TRIALS ? null
                    : (trial - RANDOM_TRIALS) % 2 == 0 ? "afterRename" : "beforeRename"; // the last one leaves a temp file
            Process child = start(input, target, blockSize, pauseAt);
            if (pauseAt != null) {
                killAtPause(child, pauseAt);
            } else {
                long delay = random.nextLong(fullMillis * 6 / 5 + 1);
                if (child.waitFor(delay, TimeUnit.MILLISECONDS)) {
                    assertEquals(0, child.exitValue(), "trial " + trial + " finished before the kill");
                } else {
                    child.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
                }
            }
            String what = "trial " + trial + " (block size " + blockSize + ", killed "
                    + (pauseAt == null ? "at a random moment" : pauseAt) + ")";
            byte[] after = Files.exists(target) ? Files.readAllBytes(target) : null;
            String outcome;
            if (after == null) {
                assertEquals(null, before, what + ": the previous file vanished");
                outcome = "absent";
            } else if (Arrays.equals(before, after)) {
                outcome = "previous";
            } else {
                assertTrue(sameTensors(target, blockSize == 64 ? reference64 : reference128),
                        what + ": the target is neither the previous file nor a complete new one");
                outcome = "new";
            }
            if ("beforeRename".equals(pauseAt)) {
                assertNotEquals("new", outcome, what + ": the target changed before the rename");
            } else if ("afterRename".equals(pauseAt)) {
                assertEquals("new", outcome, what + ": the new file is not in place after the rename");
            }
            counts.merge(outcome, 1, Integer::sum);
        }
        System.out.printf("kill test: %d trials (%d at random moments of a %d ms run, %d just before and %d just after "
                + "the rename): %d left no target, %d the previous file, %d the new complete file; %d temp files of "
                + "killed runs before the next run%n", trials, RANDOM_TRIALS, fullMillis, RENAME_TRIALS, RENAME_TRIALS,
                counts.getOrDefault("absent", 0), counts.getOrDefault("previous", 0), counts.getOrDefault("new", 0),
                partials().size());
        assertFalse(partials().isEmpty(), "the run killed just before its rename left its temp file");
        completeRun(input, target, 64);
        assertTrue(sameTensors(target, reference64));
        assertEquals(List.of(), partials(), "the next run removes the temp files of killed runs");
    }
}
