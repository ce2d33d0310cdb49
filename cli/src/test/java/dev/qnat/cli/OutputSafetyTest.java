package dev.qnat.cli;

import static dev.qnat.cli.CliTest.qnat;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsFile;
import dev.qnat.safetensors.SafetensorsTensor;
import dev.qnat.safetensors.SafetensorsWriter;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every way a command was found to replace or damage a file the user did not name as its output: each
 * must be refused before any work (exit 2, both paths named), with every file in the folder byte for
 * byte as before and no temp file left.
 */
class OutputSafetyTest {
    @TempDir
    Path dir;
    Path model;
    Path qnatFile;

    @BeforeEach
    void files() throws Exception {
        model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 1, 64, 96);
        qnatFile = dir.resolve("model.qnat");
        assertEquals(0, qnat("quantize", model.toString(), "-o", qnatFile.toString(), "--no-stats").code());
    }

    /** Every file under {@code dir} (links as links) with its bytes. */
    private Map<String, String> snapshot() throws Exception {
        Map<String, String> files = new TreeMap<>();
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.toList()) {
                String name = dir.relativize(p).toString();
                if (Files.isSymbolicLink(p)) {
                    files.put(name, "-> " + Files.readSymbolicLink(p));
                } else if (Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)) {
                    files.put(name, java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256")
                            .digest(Files.readAllBytes(p))));
                } else {
                    files.put(name, Files.isDirectory(p) ? "folder" : "special");
                }
            }
        }
        return files;
    }

    /** Runs a command that must be refused with exit 2, naming {@code named}, leaving every file as it was. */
    private void refused(List<String> named, String... args) throws Exception {
        Map<String, String> before = snapshot();
        CliTest.Result r = qnat(args);
        assertEquals(2, r.code(), String.join(" ", args) + ": " + r.err() + r.out());
        for (String name : named) {
            assertTrue(r.err().contains(name), "names " + name + ": " + r.err());
        }
        assertEquals(1, r.err().lines().count(), "one line: " + r.err());
        assertEquals(before, snapshot(), "nothing changed, no temp file left");
    }

    @Test
    void anOutputThatIsTheInputIsRefused() throws Exception {
        String m = model.toString();
        refused(List.of(m), "quantize", m, "-o", m, "--format", "bnb");
        refused(List.of(m), "quantize", m, "-o", m);
        refused(List.of(qnatFile.toString()), "dequantize", qnatFile.toString(), "-o", qnatFile.toString());
        refused(List.of(m), "quantize", m, "-o", dir.resolve("sub/../model.safetensors").toString().replace("sub/..", "."));
    }

    @Test
    void anOutputLinkedToTheInputIsRefused() throws Exception {
        Path symlink = Files.createSymbolicLink(dir.resolve("link.safetensors"), model);
        Path hardLink = Files.createLink(dir.resolve("hard.safetensors"), model);
        refused(List.of(symlink.toString(), model.toString()), "quantize", model.toString(), "-o", symlink.toString(),
                "--format", "bnb");
        refused(List.of(hardLink.toString()), "quantize", model.toString(), "-o", hardLink.toString(), "--format", "bnb");
        // The input through a link, the output its real name.
        refused(List.of(model.toString()), "quantize", symlink.toString(), "-o", model.toString(), "--format", "bnb");
        Path qnatLink = Files.createSymbolicLink(dir.resolve("q.link"), qnatFile);
        refused(List.of(qnatFile.toString()), "dequantize", qnatLink.toString(), "-o", qnatFile.toString());
    }

    @Test
    void anOutputThatIsAShardOrTheIndexOfTheInputIsRefused() throws Exception {
        Path sharded = Files.createDirectories(dir.resolve("sharded"));
        shard(model, sharded);
        Path shard = sharded.resolve("model-00002-of-00002.safetensors");
        Path index = sharded.resolve(Checkpoint.INDEX_NAME);
        for (String format : List.of("qnat", "bnb")) {
            refused(List.of(shard.toString()), "quantize", sharded.toString(), "-o", shard.toString(), "--format", format);
            refused(List.of(index.toString()), "quantize", sharded.toString(), "-o", index.toString(), "--format", format);
        }
    }

    @Test
    void theBitsandbytesConfigCannotBeTheModel() throws Exception {
        Path config = dir.resolve("quantization_config.json");
        refused(List.of(config.toString()), "quantize", model.toString(), "-o", config.toString(), "--format", "bnb");
    }

    @Test
    void foldersDevicesFifosAndNonNamesAreRefusedAsOutputs() throws Exception {
        Path folder = Files.createDirectories(dir.resolve("folder"));
        refused(List.of(folder.toString(), "folder"), "quantize", model.toString(), "-o", folder.toString());
        refused(List.of("not a file name"), "quantize", model.toString(), "-o", "/");
        refused(List.of("not a file name"), "quantize", model.toString(), "-o", "");
        refused(List.of("not a file name"), "dequantize", qnatFile.toString(), "-o", dir + "/..");
        Path fifo = dir.resolve("fifo");
        assumeTrue(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor(10, TimeUnit.SECONDS),
                "mkfifo is not available");
        refused(List.of(fifo.toString(), "not a regular file"), "quantize", model.toString(), "-o", fifo.toString());
        refused(List.of(fifo.toString(), "not a regular file"), "dequantize", qnatFile.toString(), "-o", fifo.toString());
        assertFalse(Files.isRegularFile(fifo), "the FIFO is still a FIFO");
        // /dev/null, which a run as root used to replace by a regular file.
        CliTest.Result devNull = qnat("quantize", model.toString(), "-o", "/dev/null", "--no-stats");
        assertEquals(2, devNull.code(), devNull.err());
        assertFalse(Files.isRegularFile(Path.of("/dev/null")), "/dev/null is still a device");
    }

    @Test
    void aFifoAsInputIsRefusedWithoutBlocking() throws Exception {
        Path fifo = dir.resolve("input.safetensors");
        assumeTrue(new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor(10, TimeUnit.SECONDS),
                "mkfifo is not available");
        for (String command : List.of("quantize", "dequantize", "inspect", "verify")) {
            List<String> args = new ArrayList<>(List.of(command, fifo.toString()));
            if (!command.equals("inspect") && !command.equals("verify")) {
                args.addAll(List.of("-o", dir.resolve("out.bin").toString()));
            }
            CliTest.Result r = qnat(args.toArray(String[]::new));
            assertEquals(3, r.code(), command + ": " + r.err());
            assertTrue(r.err().contains(fifo.toString()) && r.err().contains("not a regular file"), r.err());
        }
    }

    @Test
    void aReadOnlyOutputFolderIsRefusedBeforeTheWork() throws Exception {
        Path readOnly = Files.createDirectories(dir.resolve("ro"));
        assumeTrue(new ProcessBuilder("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", readOnly.toString())
                .start().waitFor(10, TimeUnit.SECONDS) && !Files.isWritable(readOnly),
                "cannot mount a read-only tmpfs here (needs root)");
        try {
            CliTest.Result r = qnat("quantize", model.toString(), "-o", readOnly.resolve("m.qnat").toString());
            assertEquals(4, r.code(), r.err());
            assertEquals("qnat: permission denied: " + readOnly + "\n", r.err());
            assertFalse(r.out().contains("quantized"), "refused before the work: " + r.out());
        } finally {
            new ProcessBuilder("umount", readOnly.toString()).start().waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void theDemoNeverTouchesFilesItDidNotMake() throws Exception {
        Path work = Files.createDirectories(dir.resolve("demo"));
        for (String name : List.of("model.safetensors", "model.qnat", "model.dequantized.safetensors")) {
            Path mine = work.resolve(name);
            Files.writeString(mine, "the user's own " + name);
            refused(List.of(name), "demo", "--layers", "1", "--hidden", "64", "--vocab", "128", "--dir", work.toString());
            refused(List.of(name), "demo", "--layers", "1", "--hidden", "64", "--vocab", "128", "--dir", work.toString(),
                    "--keep");
            Files.delete(mine);
        }
    }

    @Test
    void theBitsandbytesConfigIsWrittenWithTheModelOrNotAtAll() throws Exception {
        Path out = dir.resolve("bnb.safetensors");
        Path config = dir.resolve("quantization_config.json");
        Files.createDirectories(config); // the config cannot be written: neither may the model be
        Map<String, String> before = snapshot();
        CliTest.Result r = qnat("quantize", model.toString(), "-o", out.toString(), "--format", "bnb");
        assertEquals(2, r.code(), r.err());
        assertTrue(r.err().contains(config.toString()), r.err());
        assertEquals(before, snapshot());
        Files.delete(config);
        assertEquals(0, qnat("quantize", model.toString(), "-o", out.toString(), "--format", "bnb").code());
        assertTrue(Files.isRegularFile(out) && Files.isRegularFile(config));
    }

    /** Splits a checkpoint into two shards and an index, as transformers saves one. */
    static void shard(Path single, Path folder) throws Exception {
        try (SafetensorsFile file = SafetensorsFile.open(single)) {
            List<SafetensorsTensor> tensors = file.tensors();
            Map<String, String> weightMap = new LinkedHashMap<>();
            for (int s = 0; s < 2; s++) {
                String name = "model-0000" + (s + 1) + "-of-00002.safetensors";
                List<SafetensorsWriter.Entry> entries = new ArrayList<>();
                for (int i = s; i < tensors.size(); i += 2) {
                    SafetensorsTensor t = tensors.get(i);
                    entries.add(SafetensorsWriter.Entry.copy(t.name(), t.dtype(), t.shape(), t.data()));
                    weightMap.put(t.name(), name);
                }
                SafetensorsWriter.write(folder.resolve(name), Map.of("format", "pt"), entries);
            }
            StringBuilder json = new StringBuilder("{\"metadata\": {\"total_size\": 1}, \"weight_map\": {");
            String separator = "";
            for (Map.Entry<String, String> e : weightMap.entrySet()) {
                json.append(separator).append('"').append(e.getKey()).append("\": \"").append(e.getValue()).append('"');
                separator = ", ";
            }
            Files.writeString(folder.resolve(Checkpoint.INDEX_NAME), json.append("}}").toString());
        }
    }
}
