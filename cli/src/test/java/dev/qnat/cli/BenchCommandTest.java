package dev.qnat.cli;

import static dev.qnat.cli.CliTest.qnat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** qnat bench on a small quantized model: every distinct 2-D NF4 shape, each batch, and its JSON keys. */
class BenchCommandTest {
    @TempDir
    Path dir;

    @Test
    void timesEachShapeAndBatch() throws Exception {
        Path model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 1, 64, 96);
        Path qnatFile = dir.resolve("model.qnat");
        assertEquals(0, qnat("quantize", model.toString(), "-o", qnatFile.toString(), "--no-stats").code());

        CliTest.Result json = qnat("bench", qnatFile.toString(), "--batch", "1,3", "--threads", "2", "--json",
                "--seconds", "0.02");
        assertEquals(0, json.code(), json.err());
        for (String key : new String[] {"\"rows\"", "\"cols\"", "\"batch\": 3", "\"threads\": 2", "\"nf4_ns_per_weight\"",
            "\"f32_ns_per_weight\"", "\"nf4_gflops\"", "\"f32_gflops\""}) {
            assertTrue(json.out().contains(key), key + " in " + json.out());
        }
        assertTrue(json.out().strip().startsWith("[") && json.out().strip().endsWith("]"), json.out());

        CliTest.Result table = qnat("bench", qnatFile.toString(), "--seconds", "0.02");
        assertEquals(0, table.code(), table.err());
        assertTrue(table.out().contains("NF4 ns/w") && table.out().contains("speedup"), table.out());
    }

    @Test
    void badOptionsAreUsageErrors() {
        assertEquals(2, qnat("bench", "--batch", "0").code());
        assertEquals(2, qnat("bench", "--threads", "0").code());
    }
}
