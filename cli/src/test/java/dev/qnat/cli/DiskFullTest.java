package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A write to a file system that is too small: exit code 4, a clear message, no target and no temp file.
 * The test mounts a 1 MiB tmpfs, which needs root; elsewhere it is skipped and says why.
 */
class DiskFullTest {
    @TempDir
    Path dir;

    private static boolean run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
    }

    @Test
    void aFullDiskIsAnIoErrorAndLeavesNothing() throws Exception {
        Path model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 1, 256, 8192); // about 2.5 MiB of QNAT
        Path small = Files.createDirectories(dir.resolve("small"));
        assumeTrue(run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small.toString()),
                "cannot mount a small tmpfs here (needs root and mount), so no full disk to test against");
        try {
            CliTest.Result r = CliTest.qnat("quantize", model.toString(), "-o", small.resolve("model.qnat").toString(),
                    "--no-stats");
            assertEquals(4, r.code(), r.err());
            assertTrue(r.err().contains("not enough disk space"), r.err());
            try (Stream<Path> left = Files.list(small)) {
                assertEquals(List.of(), left.toList(), "no target and no temp file");
            }
        } finally {
            run("umount", small.toString());
        }
    }

    @Test
    void aFullDiskAfterTheBitsandbytesModelLeavesNeitherModelNorConfig() throws Exception {
        Path model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 1, 256, 8192);
        Path roomy = Files.createDirectories(dir.resolve("roomy"));
        assertEquals(0, CliTest.qnat("quantize", model.toString(), "-o", roomy.resolve("bnb.safetensors").toString(),
                "--format", "bnb").code());
        long pages = (Files.size(roomy.resolve("bnb.safetensors")) + 4095) / 4096;
        Path small = Files.createDirectories(dir.resolve("small"));
        // Room for the model's pages and not one more: the config's temp file is what finds the disk full.
        assumeTrue(run("mount", "-t", "tmpfs", "-o", "size=" + pages * 4096, "tmpfs", small.toString()),
                "cannot mount a small tmpfs here (needs root and mount), so no full disk to test against");
        try {
            CliTest.Result r = CliTest.qnat("quantize", model.toString(), "-o", small.resolve("bnb.safetensors").toString(),
                    "--format", "bnb");
            assertEquals(4, r.code(), r.err());
            assertTrue(r.err().contains("not enough disk space") && r.err().contains("quantization_config.json"), r.err());
            try (Stream<Path> left = Files.list(small)) {
                assertEquals(List.of(), left.toList(), "no model, no config and no temp file");
            }
        } finally {
            run("umount", small.toString());
        }
    }
}
