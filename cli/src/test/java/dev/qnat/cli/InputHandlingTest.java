package dev.qnat.cli;

import static dev.qnat.cli.CliTest.qnat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.format.DType;
import dev.qnat.nf4.FloatType;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsFile;
import dev.qnat.safetensors.SafetensorsTensor;
import dev.qnat.safetensors.SafetensorsWriter;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Inputs named in every way a user names them, bitsandbytes files read back, and dtype overflow. */
class InputHandlingTest {
    @TempDir
    Path dir;
    Path model;

    @BeforeEach
    void smallModel() throws Exception {
        model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 1, 64, 96);
    }

    @Test
    void aShardedCheckpointOpensHoweverItsFolderIsWritten() throws Exception {
        Path sharded = Files.createDirectories(dir.resolve("sharded"));
        OutputSafetyTest.shard(model, sharded);
        String relative = "./" + Path.of("").toAbsolutePath().relativize(sharded);
        for (String form : List.of(relative, relative + "/.", sharded + "/../sharded", sharded + "/",
                relative + "/" + Checkpoint.INDEX_NAME, sharded + "/./" + Checkpoint.INDEX_NAME)) {
            CliTest.Result r = qnat("quantize", form, "-o", dir.resolve("out.qnat").toString(), "--no-stats");
            assertEquals(0, r.code(), form + ": " + r.err());
            assertTrue(r.out().contains("quantized 9 tensors"), r.out());
        }
    }

    @Test
    void dequantizeWritesFormatPtForTransformers() throws Exception {
        Path q = dir.resolve("m.qnat");
        Path back = dir.resolve("back.safetensors");
        assertEquals(0, qnat("quantize", model.toString(), "-o", q.toString(), "--no-stats").code());
        assertEquals(0, qnat("dequantize", q.toString(), "-o", back.toString()).code());
        try (SafetensorsFile f = SafetensorsFile.open(back)) {
            assertEquals("pt", f.metadata().get("format"));
            assertTrue(f.metadata().containsKey("producer"), "the QNAT metadata is kept beside it: " + f.metadata());
        }
    }

    @Test
    void bitsandbytesFilesAreReadByDequantizeAndCompare() throws Exception {
        Path bnb = dir.resolve("bnb.safetensors");
        Path q = dir.resolve("m.qnat");
        assertEquals(0, qnat("quantize", model.toString(), "-o", bnb.toString(), "--format", "bnb").code());
        assertEquals(0, qnat("quantize", model.toString(), "-o", q.toString(), "--no-stats").code());
        // Same codes and scales either way: the comparisons must agree to the digit.
        CliTest.Result viaBnb = qnat("compare", model.toString(), bnb.toString());
        CliTest.Result viaQnat = qnat("compare", model.toString(), q.toString());
        assertEquals(0, viaBnb.code(), viaBnb.err() + viaBnb.out());
        assertEquals(viaQnat.out(), viaBnb.out());
        Path fromBnb = dir.resolve("from-bnb.safetensors");
        Path fromQnat = dir.resolve("from-qnat.safetensors");
        assertEquals(0, qnat("dequantize", bnb.toString(), "-o", fromBnb.toString()).code());
        assertEquals(0, qnat("dequantize", q.toString(), "-o", fromQnat.toString()).code());
        try (SafetensorsFile a = SafetensorsFile.open(fromBnb); SafetensorsFile b = SafetensorsFile.open(fromQnat)) {
            assertEquals(b.tensors().size(), a.tensors().size());
            for (SafetensorsTensor t : b.tensors()) {
                SafetensorsTensor other = a.tensor(t.name()).orElseThrow();
                assertEquals(t.dtype(), other.dtype(), t.name());
                assertEquals(-1, t.data().mismatch(other.data()), t.name() + " differs");
            }
        }
        CliTest.Result plain = qnat("dequantize", model.toString(), "-o", dir.resolve("x.safetensors").toString());
        assertEquals(3, plain.code(), "a plain checkpoint has nothing to dequantize: " + plain.err());
    }

    @Test
    void valuesBeyondF16AreAnErrorOrCountedInfinities() throws Exception {
        int n = 4096;
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (Math.sin(i * 0.37) * 100_000);
        }
        Path big = dir.resolve("big.safetensors");
        SafetensorsWriter.write(big, Map.of(), List.of(SafetensorsWriter.Entry.copy("w", DType.F32, new long[] {64, 64},
                MemorySegment.ofArray(values))));
        Path q = dir.resolve("big.qnat");
        assertEquals(0, qnat("quantize", big.toString(), "-o", q.toString(), "--no-stats").code());

        Path f16 = dir.resolve("big-f16.safetensors");
        CliTest.Result refused = qnat("dequantize", q.toString(), "-o", f16.toString(), "--dtype", "f16");
        assertEquals(2, refused.code(), refused.err());
        assertTrue(refused.err().contains("'w'") && refused.err().contains("infinities"), refused.err());
        assertFalse(Files.exists(f16));

        // The expected count from the F32 dequantization: F16 rounds magnitudes from 65520 up to infinity.
        Path f32 = dir.resolve("big-f32.safetensors");
        assertEquals(0, qnat("dequantize", q.toString(), "-o", f32.toString(), "--dtype", "f32").code());
        long expected = 0;
        try (SafetensorsFile f = SafetensorsFile.open(f32)) {
            MemorySegment data = f.tensor("w").orElseThrow().data();
            for (int i = 0; i < n; i++) {
                expected += Math.abs(FloatType.F32.read(data, i)) >= 65520f ? 1 : 0;
            }
        }
        assertTrue(expected > 0);
        CliTest.Result allowed = qnat("dequantize", q.toString(), "-o", f16.toString(), "--dtype", "f16",
                "--allow-overflow");
        assertEquals(0, allowed.code(), allowed.err());
        Matcher count = Pattern.compile("warning: (\\d+) values were beyond F16").matcher(allowed.err());
        assertTrue(count.find(), allowed.err());
        assertEquals(expected, Long.parseLong(count.group(1)));
    }
}
