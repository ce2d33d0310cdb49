package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * An input truncated by another process while a command reads it through a mapping, at the moment the
 * writer's {@code qnat.io.pauseAt=beforeFill} hook holds it: exit 4 with one line naming the input, no
 * output, no temp file, and no JVM crash (before, quantize died of SIGBUS with an hs_err file, and
 * dequantize printed an InternalError's stack trace).
 */
class MappedInputCliTest {
    @TempDir
    Path dir;

    private record Outcome(int code, String output) {}

    private Outcome runTruncatingInput(Path input, long keep, String... args) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(List.of(System.getProperty("qnat.jvm.args").split(" ")));
        command.addAll(List.of("-Dqnat.io.pauseAt=beforeFill", "-cp", System.getProperty("java.class.path"),
                Main.class.getName()));
        command.addAll(List.of(args));
        Process child = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
        StringBuilder seen = new StringBuilder();
        for (String line; (line = out.readLine()) != null && !line.equals("qnat: paused beforeFill"); ) {
            seen.append(line).append('\n');
        }
        try (FileChannel channel = FileChannel.open(input, StandardOpenOption.WRITE)) {
            channel.truncate(keep);
        }
        try (OutputStream in = child.getOutputStream()) {
            in.write('\n');
        }
        for (String line; (line = out.readLine()) != null; ) {
            seen.append(line).append('\n');
        }
        assertTrue(child.waitFor(60, TimeUnit.SECONDS));
        return new Outcome(child.exitValue(), seen.toString());
    }

    private List<String> listing() throws Exception {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void quantizeAndDequantizeOfATruncatedInputFailCleanly() throws Exception {
        Path model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 2, 256, 4096);
        Path keptModel = dir.resolve("kept.safetensors");
        Files.copy(model, keptModel);

        for (String format : List.of("qnat", "bnb", "qnat --scales mse", "bnb --scales mse")) {
            List<String> args = new ArrayList<>(List.of("quantize", model.toString(), "-o", dir.resolve("out.bin").toString(),
                    "--threads", "2", "--format"));
            args.addAll(List.of(format.split(" ")));
            Outcome q = runTruncatingInput(model, Files.size(model) / 3, args.toArray(String[]::new));
            assertEquals(4, q.code(), q.output());
            assertTrue(q.output().contains("qnat: " + model.toRealPath() + ": changed size from"), q.output());
            assertTrue(!q.output().contains("\tat ") && !q.output().contains("fatal error"), q.output());
            assertEquals(List.of("kept.safetensors", "model.safetensors"), listing(), "no output, temp or hs_err file");
            Files.copy(keptModel, model, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }

        Path qnat = dir.resolve("model.qnat");
        assertEquals(0, CliTest.qnat("quantize", model.toString(), "-o", qnat.toString(), "--no-stats").code());
        Outcome d = runTruncatingInput(qnat, Files.size(qnat) / 2, "dequantize", qnat.toString(), "-o",
                dir.resolve("back.safetensors").toString());
        assertEquals(4, d.code(), d.output());
        assertTrue(d.output().contains("qnat: " + qnat.toRealPath() + ": changed size from"), d.output());
        assertTrue(!d.output().contains("\tat ") && !d.output().contains("InternalError"), d.output());
        assertEquals(List.of("kept.safetensors", "model.qnat", "model.safetensors"), listing());
    }
}
