package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.format.DType;
import dev.qnat.format.QnatFile;
import dev.qnat.safetensors.SafetensorsFile;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every command run in-process on small inputs, with its output and exit code. */
class CliTest {
    @TempDir
    Path dir;
    Path model;

    record Result(int code, String out, String err) {}

    static Result qnat(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Result(code, out.toString(), err.toString());
    }

    @BeforeEach
    void smallModel() throws Exception {
        model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 2, 64, 96);
    }

    private List<String> listing() throws Exception {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void versionAndHelp() {
        Result version = qnat("--version");
        assertEquals(0, version.code());
        assertTrue(version.out().startsWith("qnat " + dev.qnat.Qnat.VERSION), version.out());
        Result help = qnat("--help");
        assertEquals(0, help.code());
        assertTrue(help.out().contains("quantize") && help.out().contains("Exit codes"), help.out());
    }

    @Test
    void everySubcommandIsThereWhateverTheArgumentsName() {
        // Main builds only the subcommand named; usage and help must still see all of them.
        Result help = qnat("--help");
        for (String name : new String[] {"quantize", "inspect", "verify", "dequantize", "compare", "demo", "bench",
            "help"}) {
            assertTrue(help.out().contains("  " + name), name + " in the usage: " + help.out());
        }
        Result helpOf = qnat("help", "inspect");
        assertEquals(0, helpOf.code());
        assertTrue(helpOf.out().contains("Usage: qnat inspect"), helpOf.out());
        assertEquals(0, qnat("--verbose", "inspect", model.toString()).code(), "an inherited option before the name");
        Result mistyped = qnat("inspekt", model.toString());
        assertEquals(2, mistyped.code());
        assertTrue(mistyped.err().contains("inspect"), "the suggestion names the real one: " + mistyped.err());
    }

    @Test
    void usageErrorsExitWith2() {
        assertEquals(2, qnat("quantize", model.toString()).code(), "missing -o");
        assertEquals(2, qnat("frobnicate").code());
        Result odd = qnat("quantize", model.toString(), "-o", dir.resolve("x.qnat").toString(), "--block-size", "63");
        assertEquals(2, odd.code());
        assertTrue(odd.err().contains("got 63"), odd.err());
        assertEquals(2, qnat("dequantize", "x", "-o", "y", "--dtype", "f64").code());
        Result rule = qnat("quantize", model.toString(), "-o", dir.resolve("x.qnat").toString(), "--scales", "best");
        assertEquals(2, rule.code());
        assertTrue(rule.err().contains("--scales: scales must be absmax or mse, got 'best'"), rule.err());
        assertFalse(Files.exists(dir.resolve("x.qnat")));
    }

    /** MSE scales end to end: a file that verifies, with a smaller error than absmax's in compare's figures. */
    @Test
    void mseScalesQuantizeVerifyAndCompare() throws Exception {
        Path absmax = dir.resolve("absmax.qnat");
        Path mse = dir.resolve("mse.qnat");
        assertEquals(0, qnat("quantize", model.toString(), "-o", absmax.toString()).code());
        Result q = qnat("quantize", model.toString(), "-o", mse.toString(), "--scales", "mse");
        assertEquals(0, q.code(), q.err());
        assertTrue(q.out().contains("(block 64, double quantization, mse scales)"), q.out());
        assertEquals(0, qnat("verify", mse.toString()).code());
        double rmseAbsmax = rmse(qnat("compare", model.toString(), absmax.toString()).out());
        double rmseMse = rmse(qnat("compare", model.toString(), mse.toString()).out());
        assertTrue(rmseMse < 0.97 * rmseAbsmax, "RMSE " + rmseMse + " with mse scales, " + rmseAbsmax + " with absmax");
    }

    private static double rmse(String out) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("float tensors: RMSE ([0-9.eE+-]+)").matcher(out);
        assertTrue(m.find(), out);
        return Double.parseDouble(m.group(1));
    }

    @Test
    void quantizeInspectVerifyDequantizeCompare() throws Exception {
        Path out = dir.resolve("model.qnat");
        Result q = qnat("quantize", model.toString(), "-o", out.toString(), "--threads", "2");
        assertEquals(0, q.code(), q.err());
        assertTrue(q.out().contains("quantized 16 tensors to NF4 (block 64, double quantization, absmax scales), kept 5"), q.out());
        assertTrue(q.out().contains("bits per quantized weight: 4.13"), q.out());
        assertTrue(q.out().contains("accuracy over all quantized weights: RMSE"), q.out());
        assertTrue(q.out().contains("worst tensor '"), q.out());

        Result inspect = qnat("inspect", out.toString());
        assertEquals(0, inspect.code());
        assertTrue(inspect.out().contains("QNAT v2") && inspect.out().contains("model.norm.weight"), inspect.out());
        Result json = qnat("inspect", "--json", out.toString());
        assertTrue(json.out().startsWith("{\"file\": ") && json.out().contains("\"encoding\": \"NF4/64/DOUBLE_QUANT\""),
                json.out());

        Result verify = qnat("verify", out.toString());
        assertEquals(0, verify.code(), verify.out());
        assertTrue(verify.out().startsWith("OK: "), verify.out());

        Path back = dir.resolve("back.safetensors");
        Result dq = qnat("dequantize", out.toString(), "-o", back.toString(), "--dtype", "f32");
        assertEquals(0, dq.code(), dq.err());
        try (SafetensorsFile f = SafetensorsFile.open(back)) {
            assertEquals(DType.F32, f.tensor("lm_head.weight").orElseThrow().dtype());
            assertEquals(DType.BF16, f.tensor("model.norm.weight").orElseThrow().dtype(), "kept tensors are copied");
        }

        Result compare = qnat("compare", model.toString(), out.toString());
        assertEquals(0, compare.code(), compare.out());
        assertTrue(compare.out().contains("all 21 float tensors: RMSE"), compare.out());
        Result compareJson = qnat("compare", "--json", model.toString(), back.toString());
        assertEquals(0, compareJson.code());
        assertTrue(compareJson.out().contains("\"problems\": []"), compareJson.out());
    }

    @Test
    void includeExcludeAndBitsandbytesFormat() throws Exception {
        Path out = dir.resolve("q.qnat");
        Result q = qnat("quantize", model.toString(), "-o", out.toString(), "--include", "*.mlp.*",
                "--exclude", "*.down_proj.*", "--no-double-quant", "--no-stats");
        assertEquals(0, q.code(), q.err());
        assertTrue(q.out().contains("quantized 4 tensors to NF4 (block 64, absmax scales), kept 17"), q.out());
        assertFalse(q.out().contains("accuracy"), q.out());
        Path bnb = dir.resolve("bnb.safetensors");
        Result b = qnat("quantize", model.toString(), "-o", bnb.toString(), "--format", "bnb");
        assertEquals(0, b.code(), b.err());
        assertTrue(Files.exists(dir.resolve("quantization_config.json")));
        Result inspect = qnat("inspect", bnb.toString());
        assertTrue(inspect.out().contains("bitsandbytes NF4 safetensors"), inspect.out());
    }

    @Test
    void includeAndExcludeMatchNamesAsStrings() throws Exception {
        Path odd = dir.resolve("odd-names.safetensors");
        MemorySegment zeros = MemorySegment.ofArray(new byte[4 * 64]);
        SafetensorsWriter.write(odd, Map.of(), Stream.of("nul\u0000.weight", "caf\u00e9.weight", "dir/x.weight")
                .map(name -> SafetensorsWriter.Entry.copy(name, DType.F32, new long[] {8, 8}, zeros)).toList());
        Result q = qnat("quantize", odd.toString(), "-o", dir.resolve("odd.qnat").toString(), "--no-stats",
                "--include", "nul?.*", "--include", "caf\u00e9.*", "--include", "dir*", "--exclude", "*/x.*");
        assertEquals(0, q.code(), q.err());
        assertTrue(q.out().contains("quantized 2 tensors to NF4 (block 64, double quantization, absmax scales), kept 1"), q.out());
    }

    @Test
    void badOrUnmatchedGlobsAreUsageErrorsAndWriteNothing() throws Exception {
        Path out = dir.resolve("q.qnat");
        List<String> before = listing();
        Result bad = qnat("quantize", model.toString(), "-o", out.toString(), "--exclude", "*.[mlp");
        assertEquals(2, bad.code(), bad.err());
        assertTrue(bad.err().startsWith("--exclude: the glob '*.[mlp' has a [ without its ]"), bad.err());
        Result unmatched = qnat("quantize", model.toString(), "-o", out.toString(), "--include", "*.mlp.*",
                "--include", "*.mlpp.*");
        assertEquals(2, unmatched.code(), unmatched.err());
        assertEquals("qnat: --include '*.mlpp.*' matches no tensor of " + model + "\n", unmatched.err());
        assertEquals("", unmatched.out());
        assertEquals(before, listing(), "no output and no temp file");
    }

    @Test
    void damagedMissingAndMalformedInputs() throws Exception {
        Path out = dir.resolve("model.qnat");
        assertEquals(0, qnat("quantize", model.toString(), "-o", out.toString(), "--no-stats").code());
        byte[] bytes = Files.readAllBytes(out);
        bytes[bytes.length - 100] ^= 0x10;
        Path damaged = dir.resolve("damaged.qnat");
        Files.write(damaged, bytes);
        Result verify = qnat("verify", damaged.toString());
        assertEquals(1, verify.code());
        assertTrue(verify.out().startsWith("FAILED: ") && verify.out().contains("CRC"), verify.out());

        Result missing = qnat("inspect", dir.resolve("nope.qnat").toString());
        assertEquals(4, missing.code());
        assertEquals("qnat: no such file: " + dir.resolve("nope.qnat") + "\n", missing.err());

        Result noFolder = qnat("quantize", model.toString(), "-o", dir.resolve("no/such/folder/m.qnat").toString());
        assertEquals(4, noFolder.code());
        assertEquals("qnat: " + dir.resolve("no/such/folder") + ": the output folder does not exist\n", noFolder.err());

        Path garbage = dir.resolve("garbage.safetensors");
        Files.write(garbage, new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9});
        Result bad = qnat("quantize", garbage.toString(), "-o", dir.resolve("g.qnat").toString());
        assertEquals(3, bad.code());
        assertTrue(bad.err().startsWith("qnat: " + garbage), bad.err());
        assertEquals(1, bad.err().lines().count(), "one line, no stack trace");
        assertTrue(qnat("--verbose", "quantize", garbage.toString(), "-o", dir.resolve("g.qnat").toString())
                .err().contains("\tat "), "--verbose adds the stack trace");
    }

    @Test
    void aTensorWithAnEmptyNameIsMalformedInput() throws Exception {
        byte[] header = "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}".getBytes(StandardCharsets.UTF_8);
        ByteBuffer bytes = ByteBuffer.allocate(8 + header.length + 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(header.length).put(header);
        Path file = dir.resolve("empty-name.safetensors");
        Files.write(file, bytes.array());
        Result r = qnat("inspect", file.toString());
        assertEquals(3, r.code(), r.err());
        assertEquals("qnat: " + file + ": a tensor has an empty name\n", r.err());
    }

    @Test
    void nanInACheckpointNamesTheTensorAndWritesNothing() throws Exception {
        ByteBuffer data = ByteBuffer.allocate(4 * 128).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 128; i++) {
            data.putFloat(i == 77 ? Float.NaN : i * 0.01f);
        }
        Path nan = dir.resolve("nan.safetensors");
        SafetensorsWriter.write(nan, Map.of(), List.of(SafetensorsWriter.Entry.copy("layer.weight", DType.F32,
                new long[] {8, 16}, MemorySegment.ofArray(data.array()))));
        List<String> before = listing();
        for (List<String> options : List.of(List.<String>of(), List.of("--scales", "mse"),
                List.of("--scales", "mse", "--no-double-quant"), List.of("--scales", "mse", "--format", "bnb"))) {
            List<String> args = new ArrayList<>(List.of("quantize", nan.toString(), "-o", dir.resolve("nan.qnat").toString()));
            args.addAll(options);
            Result r = qnat(args.toArray(String[]::new));
            assertEquals(3, r.code(), options.toString());
            assertTrue(r.err().contains("'layer.weight'") && r.err().contains("element 77"), options + ": " + r.err());
            assertEquals(before, listing(), options + ": no output and no temp file");
        }
    }

    @Test
    void demoAtASmallSize() throws Exception {
        Path work = Files.createDirectories(dir.resolve("demo"));
        Files.writeString(work.resolve("mine.txt"), "not the demo's");
        Result demo = qnat("demo", "--layers", "1", "--hidden", "64", "--vocab", "128", "--dir", work.toString());
        assertEquals(0, demo.code(), demo.err());
        for (String step : List.of("1/6 generate", "2/6 quantize", "3/6 verify", "4/6 dequantize", "5/6 compare",
                "6/6 multiply   matVec with", "largest error against them", "done in")) {
            assertTrue(demo.out().contains(step), demo.out());
        }
        try (Stream<Path> left = Files.list(work)) {
            assertEquals(List.of("mine.txt"), left.map(p -> p.getFileName().toString()).toList(),
                    "the demo removes only its own files");
        }
        Result kept = qnat("demo", "--layers", "1", "--hidden", "64", "--vocab", "128", "--dir", work.toString(), "--keep");
        assertEquals(0, kept.code());
        try (QnatFile q = QnatFile.open(work.resolve("model.qnat"))) {
            q.verify();
        }
    }
}
