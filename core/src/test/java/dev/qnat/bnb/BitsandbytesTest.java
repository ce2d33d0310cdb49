package dev.qnat.bnb;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.convert.ConversionTest;
import dev.qnat.convert.Quantizer;
import dev.qnat.format.DType;
import dev.qnat.format.FormatException;
import dev.qnat.format.NonFiniteTensorException;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.format.QnatWriter;
import dev.qnat.format.TensorToWrite;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.nf4.ScaleRule;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsFile;
import dev.qnat.safetensors.SafetensorsTensor;
import dev.qnat.safetensors.SafetensorsWriter;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class BitsandbytesTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    @Test
    void floatsAreWrittenAsPythonReprWritesThem() {
        assertEquals("0.1", PythonJson.floatRepr(0.1));
        assertEquals("1e-05", PythonJson.floatRepr(1e-5));
        assertEquals("1.5e-07", PythonJson.floatRepr(1.5e-7));
        assertEquals("0.0001", PythonJson.floatRepr(1e-4));
        assertEquals("0.00012345", PythonJson.floatRepr(0.00012345));
        assertEquals("12345.678", PythonJson.floatRepr(12345.678));
        assertEquals("1000000000000000.0", PythonJson.floatRepr(1e15));
        assertEquals("1e+16", PythonJson.floatRepr(1e16));
        assertEquals("2.0", PythonJson.floatRepr(2));
        assertEquals("-0.5", PythonJson.floatRepr(-0.5));
        assertEquals("0.0", PythonJson.floatRepr(0));
        // A float32 offset as torch's .item() hands it to json.dumps: the double of the float.
        assertEquals("0.10000000149011612", PythonJson.floatRepr(0.1f));
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void exportHasBitsandbytesLayoutAndImportGivesTheSameQnat(boolean doubleQuant) throws Exception {
        exportAndCompare(ConversionTest.MODEL, doubleQuant, 1, ScaleRule.ABSMAX);
    }

    /**
     * MSE scales: the export imports to the QNAT file written directly, and dequantizes by bitsandbytes'
     * own rule, computed here from the exported tensors alone, to exactly what qnat dequantizes.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void mseScalesExportImportAndDequantizeByTheBitsandbytesRule(boolean doubleQuant) throws Exception {
        List<ConversionTest.Spec> model = List.of(new ConversionTest.Spec("a.weight", DType.BF16, new long[] {300, 701}, false),
                new ConversionTest.Spec("b.weight", DType.F32, new long[] {257, 100}, false),
                new ConversionTest.Spec("b.bias", DType.F32, new long[] {100}, false));
        exportAndCompare(model, doubleQuant, 2, ScaleRule.MSE);
        try (SafetensorsFile exported = SafetensorsFile.open(dir.resolve("bnb.safetensors"));
             QnatFile direct = QnatFile.open(dir.resolve("direct.qnat"))) {
            for (String name : List.of("a.weight", "b.weight")) {
                QnatTensor q = direct.tensor(name).orElseThrow();
                float[] ours = new float[(int) q.elementCount()];
                q.dequantize(MemorySegment.ofArray(ours), FloatType.F32);
                assertArrayEquals(ours, byBitsandbytesRule(exported, name, doubleQuant), name);
                try (Checkpoint checkpoint = Checkpoint.open(dir.resolve("model.safetensors"))) {
                    SafetensorsTensor in = checkpoint.tensor(name).orElseThrow();
                    byte[] codes = new byte[(int) Nf4.packedSize(ours.length)];
                    float[] absmax = new float[(int) Nf4.blockCount(ours.length, 64)];
                    Nf4.quantize(in.data(), in.dtype().floatType().orElseThrow(), 64, MemorySegment.ofArray(codes),
                            MemorySegment.ofArray(absmax));
                    assertFalse(Arrays.equals(absmax, q.absmax(java.lang.foreign.Arena.ofAuto()).toArray(F32)),
                            name + ": the MSE scales are not the absmax");
                }
            }
        }
    }

    /**
     * bitsandbytes' dequantize_4bit, from the exported tensors: element 2i's code in the high nibble,
     * {@code quant_map[code] * absmax}, where a double-quantized absmax is
     * {@code nested_quant_map[absmax_u8] * nested_absmax[block / 256] + nested_offset}, in float32.
     */
    private static float[] byBitsandbytesRule(SafetensorsFile f, String p, boolean doubleQuant) {
        SafetensorsTensor packed = f.tensor(p).orElseThrow();
        float[] quantMap = f.tensor(p + ".quant_map").orElseThrow().data().toArray(F32);
        MemorySegment absmax = f.tensor(p + ".absmax").orElseThrow().data();
        String state = new String(f.tensor(p + ".quant_state.bitsandbytes__nf4").orElseThrow().data()
                .toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        java.util.regex.Matcher shape = java.util.regex.Pattern.compile("\"shape\": \\[(\\d+), (\\d+)\\]").matcher(state);
        assertTrue(shape.find(), state);
        int n = Integer.parseInt(shape.group(1)) * Integer.parseInt(shape.group(2));
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            int b = i / 64;
            float scale;
            if (doubleQuant) {
                java.util.regex.Matcher offset = java.util.regex.Pattern.compile("\"nested_offset\": ([0-9.e+-]+)")
                        .matcher(state);
                assertTrue(offset.find(), state);
                float[] nestedMap = f.tensor(p + ".nested_quant_map").orElseThrow().data().toArray(F32);
                float[] nested = f.tensor(p + ".nested_absmax").orElseThrow().data().toArray(F32);
                scale = nestedMap[absmax.get(ValueLayout.JAVA_BYTE, b) & 0xFF] * nested[b / 256]
                        + (float) Double.parseDouble(offset.group(1));
            } else {
                scale = absmax.getAtIndex(F32, b);
            }
            int packedByte = packed.data().get(ValueLayout.JAVA_BYTE, i / 2) & 0xFF;
            values[i] = quantMap[i % 2 == 0 ? packedByte >>> 4 : packedByte & 0xF] * scale;
        }
        return values;
    }

    /** Tensors of several of the chunks in which the exporter finds the double-quantization offset, with a tail. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void largeTensorsExportAsWellOnSeveralThreads(boolean doubleQuant) throws Exception {
        exportAndCompare(List.of(new ConversionTest.Spec("a.weight", DType.BF16, new long[] {300, 701}, false),
                new ConversionTest.Spec("b.weight", DType.F32, new long[] {257, 1000}, false),
                new ConversionTest.Spec("b.bias", DType.F32, new long[] {1000}, false)), doubleQuant, 2, ScaleRule.ABSMAX);
    }

    private void exportAndCompare(List<ConversionTest.Spec> model, boolean doubleQuant, int threads, ScaleRule rule)
            throws Exception {
        Path original = dir.resolve("model.safetensors");
        ConversionTest.writeCheckpoint(original, model, 9);
        Path bnb = dir.resolve("bnb.safetensors");
        Quantizer.Options options = Quantizer.Options.defaults().withDoubleQuant(doubleQuant).withThreads(threads)
                .withScaleRule(rule);
        try (Checkpoint checkpoint = Checkpoint.open(original)) {
            long matrices = checkpoint.tensors().stream().filter(Quantizer.FLOAT_MATRICES).count();
            Quantizer.Summary summary = BitsandbytesExport.export(checkpoint, bnb, options);
            assertEquals(matrices, summary.quantized());
            assertTrue(Files.readString(dir.resolve("quantization_config.json"))
                    .contains("\"bnb_4bit_use_double_quant\": " + doubleQuant));
            try (SafetensorsFile exported = SafetensorsFile.open(bnb)) {
                for (SafetensorsTensor in : checkpoint.tensors()) {
                    if (!Quantizer.FLOAT_MATRICES.test(in)) {
                        assertEquals(-1, in.data().mismatch(exported.tensor(in.name()).orElseThrow().data()));
                        continue;
                    }
                    checkExported(in, exported, doubleQuant, rule);
                }
            }
            Path direct = dir.resolve("direct.qnat");
            Quantizer.quantize(checkpoint, direct, options);
            Path imported = dir.resolve("imported.qnat");
            try (Checkpoint bnbCheckpoint = Checkpoint.open(bnb)) {
                BitsandbytesImport.Summary result = BitsandbytesImport.toQnat(bnbCheckpoint, imported, 2,
                        QnatWriter.Progress.NONE);
                assertEquals(matrices, result.quantized());
                assertEquals(model.size() - matrices, result.kept());
            }
            try (QnatFile a = QnatFile.open(direct); QnatFile b = QnatFile.open(imported)) {
                assertEquals(a.tensors().size(), b.tensors().size());
                for (QnatTensor x : a.tensors()) {
                    QnatTensor y = b.tensor(x.name()).orElseThrow();
                    assertEquals(x.scaleStorage(), y.scaleStorage(), x.name());
                    assertEquals(-1, x.data().mismatch(y.data()), x.name() + " codes");
                    assertEquals(-1, x.scales().mismatch(y.scales()), x.name() + " scales");
                    assertEquals(x.doubleQuantOffset(), y.doubleQuantOffset(), x.name());
                }
            }
        }
    }

    private static void checkExported(SafetensorsTensor in, SafetensorsFile exported, boolean doubleQuant,
                                      ScaleRule rule) {
        String p = in.name();
        long n = in.elementCount();
        long blocks = Nf4.blockCount(n, 64);
        byte[] codes = new byte[(int) Nf4.packedSize(n)];
        float[] absmax = new float[(int) blocks];
        Nf4.quantize(in.data(), in.dtype().floatType().orElseThrow(), 64, MemorySegment.ofArray(codes),
                MemorySegment.ofArray(absmax), rule);
        SafetensorsTensor packed = exported.tensor(p).orElseThrow();
        assertEquals(DType.U8, packed.dtype());
        assertArrayEquals(new long[] {(n + 1) / 2, 1}, packed.shape());
        for (int i = 0; i < codes.length && !(doubleQuant && rule == ScaleRule.MSE); i++) {
            // (MSE codes under double quantization follow the stored scales: byBitsandbytesRule checks them.)
            int ours = codes[i] & 0xFF;
            int theirs = packed.data().get(ValueLayout.JAVA_BYTE, i) & 0xFF;
            assertEquals(ours >>> 4 | (ours & 0xF) << 4, theirs, p + " byte " + i + ": element 2i in the high nibble");
        }
        SafetensorsTensor scales = exported.tensor(p + ".absmax").orElseThrow();
        assertEquals(doubleQuant ? DType.U8 : DType.F32, scales.dtype());
        assertArrayEquals(new long[] {blocks}, scales.shape());
        if (!doubleQuant) {
            assertArrayEquals(absmax, scales.data().toArray(F32));
        }
        assertArrayEquals(Nf4Codebook.levels(), exported.tensor(p + ".quant_map").orElseThrow().data().toArray(F32));
        assertEquals(doubleQuant, exported.tensor(p + ".nested_absmax").isPresent());
        assertEquals(doubleQuant, exported.tensor(p + ".nested_quant_map").isPresent());
        String state = new String(exported.tensor(p + ".quant_state.bitsandbytes__nf4").orElseThrow().data()
                .toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
        String torchDtype = switch (in.dtype()) {
            case F32 -> "float32";
            case F16 -> "float16";
            default -> "bfloat16";
        };
        String expectedStart = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"" + torchDtype + "\", \"shape\": ["
                + in.shape()[0] + ", " + in.shape()[1] + "]";
        assertTrue(state.startsWith(expectedStart), state);
        assertTrue(doubleQuant ? state.matches(".*, \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", "
                + "\"nested_offset\": [0-9.e+-]+\\}") : state.equals(expectedStart + "}"), state);
    }

    /** A NaN far into a tensor (past the first chunk of the offset pass) is reported at its own index. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aNanIsReportedWithItsTensorAndIndexAndNothingIsWritten(boolean doubleQuant) throws Exception {
        long[] shape = {400, 500};
        long nanAt = 150_001;
        Path original = dir.resolve("nan.safetensors");
        SafetensorsWriter.write(original, Map.of(), List.of(new SafetensorsWriter.Entry("w", DType.F32, shape, out -> {
            for (long i = 0; i < shape[0] * shape[1]; i++) {
                out.setAtIndex(F32, i, i == nanAt ? Float.NaN : (float) Math.sin(i));
            }
        })));
        Path bnb = dir.resolve("nan.bnb.safetensors");
        try (Checkpoint checkpoint = Checkpoint.open(original)) {
            NonFiniteTensorException e = assertThrows(NonFiniteTensorException.class, () -> BitsandbytesExport.export(
                    checkpoint, bnb, Quantizer.Options.defaults().withDoubleQuant(doubleQuant).withThreads(2)));
            assertEquals("w", e.tensor());
            assertEquals(nanAt, e.index());
        }
        assertTrue(Files.notExists(bnb));
        try (var files = Files.list(dir)) {
            assertEquals(List.of(original), files.filter(f -> !f.getFileName().toString().equals("quantization_config.json"))
                    .toList(), "no temp file left");
        }
    }

    /** A bitsandbytes state dict written by hand from the key table, not by our exporter. */
    @Test
    void aHandWrittenBitsandbytesFileImports() throws Exception {
        // Weight "w" of shape [2, 3], block 4: elements 0..3 in block 0 (absmax 2), 4..5 in block 1 (absmax 0.5).
        int[] codes = {15, 0, 7, 12, 3, 9};
        byte[] packed = new byte[3];
        for (int k = 0; k < 3; k++) {
            packed[k] = (byte) (codes[2 * k] << 4 | codes[2 * k + 1]); // element 2k in the HIGH nibble
        }
        ByteBuffer absmax = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putFloat(2f).putFloat(0.5f);
        ByteBuffer map = ByteBuffer.allocate(64).order(ByteOrder.LITTLE_ENDIAN);
        for (float level : Nf4Codebook.levels()) {
            map.putFloat(level);
        }
        byte[] state = "{\"quant_type\": \"nf4\", \"blocksize\": 4, \"dtype\": \"float16\", \"shape\": [2, 3]}"
                .getBytes(StandardCharsets.UTF_8);
        Path file = dir.resolve("hand.safetensors");
        SafetensorsWriter.write(file, Map.of(), List.of(
                SafetensorsWriter.Entry.copy("w", DType.U8, new long[] {3, 1}, MemorySegment.ofArray(packed)),
                SafetensorsWriter.Entry.copy("w.absmax", DType.F32, new long[] {2}, MemorySegment.ofArray(absmax.array())),
                SafetensorsWriter.Entry.copy("w.quant_map", DType.F32, new long[] {16}, MemorySegment.ofArray(map.array())),
                SafetensorsWriter.Entry.copy("w.quant_state.bitsandbytes__nf4", DType.U8, new long[] {state.length},
                        MemorySegment.ofArray(state)),
                SafetensorsWriter.Entry.copy("b", DType.F32, new long[] {2}, MemorySegment.ofArray(new byte[8]))));
        Path qnat = dir.resolve("hand.qnat");
        try (Checkpoint checkpoint = Checkpoint.open(file)) {
            BitsandbytesImport.toQnat(checkpoint, qnat, 1, QnatWriter.Progress.NONE);
        }
        try (QnatFile q = QnatFile.open(qnat)) {
            assertEquals(2, q.tensors().size());
            QnatTensor w = q.tensor("w").orElseThrow();
            assertEquals(DType.F16, w.dtype());
            assertArrayEquals(new long[] {2, 3}, w.shape());
            float[] values = w.toFloats();
            float[] scale = {2f, 2f, 2f, 2f, 0.5f, 0.5f};
            for (int i = 0; i < 6; i++) {
                assertEquals(Nf4Codebook.level(codes[i]) * scale[i], values[i], "element " + i);
            }
            short[] half = new short[6];
            w.dequantize(MemorySegment.ofArray(half), FloatType.F16);
            assertEquals(Float.floatToFloat16(Nf4Codebook.level(12) * 2f), half[3]);
        }
    }

    @Test
    void unsupportedOrIncompleteStateIsRefused() throws Exception {
        byte[] state = "{\"quant_type\": \"fp4\", \"blocksize\": 64, \"dtype\": \"float16\", \"shape\": [2]}"
                .getBytes(StandardCharsets.UTF_8);
        Path file = dir.resolve("fp4.safetensors");
        SafetensorsWriter.write(file, Map.of(), List.of(SafetensorsWriter.Entry.copy("w.quant_state.bitsandbytes__nf4",
                DType.U8, new long[] {state.length}, MemorySegment.ofArray(state))));
        try (Checkpoint checkpoint = Checkpoint.open(file)) {
            FormatException e = assertThrows(FormatException.class, () -> BitsandbytesImport.plan(checkpoint));
            assertTrue(e.getMessage().contains("fp4"), e.getMessage());
        }
        byte[] nf4 = "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float16\", \"shape\": [2]}"
                .getBytes(StandardCharsets.UTF_8);
        Files.delete(file);
        SafetensorsWriter.write(file, Map.of(), List.of(SafetensorsWriter.Entry.copy("w.quant_state.bitsandbytes__nf4",
                DType.U8, new long[] {nf4.length}, MemorySegment.ofArray(nf4))));
        try (Checkpoint checkpoint = Checkpoint.open(file)) {
            FormatException e = assertThrows(FormatException.class, () -> BitsandbytesImport.plan(checkpoint));
            assertTrue(e.getMessage().contains("has no 'w'"), e.getMessage());
        }
    }

    @Test
    void shapesTooLargeOrWithTooManyDimensionsAreFormatErrors() throws Exception {
        String tooManyDimensions = "[" + "1, ".repeat(TensorToWrite.MAX_RANK) + "1]";
        for (String shape : List.of("[1099511627776, 1099511627776]", "[4611686018427387904]", tooManyDimensions,
                "[" + "1, ".repeat(1000) + "1]")) {
            byte[] state = ("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float16\", \"shape\": " + shape + "}")
                    .getBytes(StandardCharsets.UTF_8);
            Path file = dir.resolve("shape.safetensors");
            Files.deleteIfExists(file);
            SafetensorsWriter.write(file, Map.of(), List.of(SafetensorsWriter.Entry.copy("w.quant_state.bitsandbytes__nf4",
                    DType.U8, new long[] {state.length}, MemorySegment.ofArray(state))));
            try (Checkpoint checkpoint = Checkpoint.open(file)) {
                FormatException e = assertThrows(FormatException.class, () -> BitsandbytesImport.plan(checkpoint), shape);
                assertTrue(e.getMessage().startsWith(file + ": tensor 'w'") && e.getMessage().contains("shape")
                        && !e.getMessage().contains("cannot be read"), e.getMessage());
            }
        }
    }
}
