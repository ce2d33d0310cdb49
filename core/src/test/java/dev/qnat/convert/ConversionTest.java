package dev.qnat.convert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.format.DType;
import dev.qnat.format.Encoding;
import dev.qnat.format.FormatException;
import dev.qnat.format.QnatFile;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsFile;
import dev.qnat.safetensors.SafetensorsTensor;
import dev.qnat.safetensors.SafetensorsWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** safetensors to QNAT to safetensors, single and sharded, on small generated checkpoints. */
public class ConversionTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    public record Spec(String name, DType dtype, long[] shape, boolean zeros) {}

    public static final List<Spec> MODEL = List.of(
            new Spec("model.embed_tokens.weight", DType.BF16, new long[] {64, 32}, false),
            new Spec("model.layers.0.self_attn.q_proj.weight", DType.F32, new long[] {48, 40}, false),
            new Spec("model.layers.0.mlp.up_proj.weight", DType.F16, new long[] {33, 17}, false),
            new Spec("model.layers.0.zero_proj.weight", DType.F32, new long[] {8, 64}, true),
            new Spec("model.norm.weight", DType.BF16, new long[] {32}, false),
            new Spec("position_ids", DType.I64, new long[] {10}, false));

    /** Writes the given tensors of MODEL (random N(0, 0.02) floats, with a few outliers) as safetensors. */
    public static void writeCheckpoint(Path file, List<Spec> specs, long seed) throws Exception {
        SplittableRandom random = new SplittableRandom(seed);
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (Spec s : specs) {
            long n = 1;
            for (long d : s.shape()) {
                n *= d;
            }
            long count = n;
            byte[] bytes = new byte[(int) s.dtype().sizeOf(n)];
            MemorySegment data = MemorySegment.ofArray(bytes);
            for (long i = 0; i < count && !s.zeros(); i++) {
                float x = (float) (random.nextGaussian() * (random.nextInt(500) == 0 ? 1.0 : 0.02));
                switch (s.dtype()) {
                    case F32 -> data.setAtIndex(F32, i, x);
                    case F16, BF16 -> data.setAtIndex(HALF, i, s.dtype().floatType().orElseThrow().floatToHalfBits(x));
                    default -> data.setAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i, i * 7);
                }
            }
            entries.add(SafetensorsWriter.Entry.copy(s.name(), s.dtype(), s.shape(), data));
        }
        SafetensorsWriter.write(file, Map.of("format", "pt"), entries);
    }

    @Test
    void safetensorsToQnatAndBack() throws Exception {
        Path original = dir.resolve("model.safetensors");
        writeCheckpoint(original, MODEL, 1);
        Path qnat = dir.resolve("model.qnat");
        Path back = dir.resolve("back.safetensors");
        try (Checkpoint checkpoint = Checkpoint.open(original)) {
            Quantizer.Summary summary = Quantizer.quantize(checkpoint, qnat, Quantizer.Options.defaults().withDoubleQuant(false)
                    .withThreads(2));
            assertEquals(4, summary.quantized());
            assertEquals(2, summary.kept());
            assertEquals(checkpoint.dataBytes(), summary.bytesIn());
            assertEquals(Files.size(qnat), summary.bytesOut());
            // Without double quantization: half a byte per element (rounded up) and an f32 per block of 64.
            long elements = 0;
            long payload = 0;
            long kept = 0;
            for (var t : checkpoint.tensors()) {
                if (Quantizer.FLOAT_MATRICES.test(t)) {
                    elements += t.elementCount();
                    payload += (t.elementCount() + 1) / 2 + 4 * ((t.elementCount() + 63) / 64);
                } else {
                    kept += t.data().byteSize();
                }
            }
            assertEquals(elements, summary.quantizedElements());
            assertEquals(payload, summary.payloadBytes());
            assertEquals(kept, summary.keptBytes());
            try (QnatFile file = QnatFile.open(qnat)) {
                assertEquals(Encoding.RAW, file.tensor("model.norm.weight").orElseThrow().encoding());
                assertEquals(Encoding.NF4, file.tensor("model.embed_tokens.weight").orElseThrow().encoding());
                assertEquals("qnat " + dev.qnat.Qnat.VERSION, file.metadata().get("producer"));
                Dequantizer.toSafetensors(file, back, null, false);
            }
            try (SafetensorsFile restored = SafetensorsFile.open(back)) {
                assertEquals(MODEL.size(), restored.tensors().size());
                for (SafetensorsTensor in : checkpoint.tensors()) {
                    SafetensorsTensor out = restored.tensor(in.name()).orElseThrow();
                    assertEquals(in.dtype(), out.dtype(), in.name());
                    assertArrayEquals(in.shape(), out.shape(), in.name());
                    if (!Quantizer.FLOAT_MATRICES.test(in)) {
                        assertEquals(-1, in.data().mismatch(out.data()), in.name() + " is copied as stored");
                        continue;
                    }
                    // Expected: the codec applied directly to the original tensor.
                    FloatType type = in.dtype().floatType().orElseThrow();
                    long n = in.elementCount();
                    byte[] codes = new byte[(int) Nf4.packedSize(n)];
                    float[] absmax = new float[(int) Nf4.blockCount(n, 64)];
                    Nf4.quantize(in.data(), type, 64, MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax));
                    byte[] expected = new byte[(int) (n * type.byteSize())];
                    Nf4.dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), 64,
                            MemorySegment.ofArray(expected), type);
                    assertEquals(-1, MemorySegment.ofArray(expected).mismatch(out.data()), in.name());
                }
            }
        }
    }

    @Test
    void shardedCheckpointsReadAsOne() throws Exception {
        writeCheckpoint(dir.resolve("model-00001-of-00002.safetensors"), MODEL.subList(0, 3), 2);
        writeCheckpoint(dir.resolve("model-00002-of-00002.safetensors"), MODEL.subList(3, 6), 3);
        StringBuilder map = new StringBuilder();
        for (int i = 0; i < MODEL.size(); i++) {
            map.append(i == 0 ? "" : ",").append('"').append(MODEL.get(i).name()).append("\":\"model-0000")
                    .append(i < 3 ? 1 : 2).append("-of-00002.safetensors\"");
        }
        Files.writeString(dir.resolve(Checkpoint.INDEX_NAME), "{\"metadata\":{\"total_size\":12345},\"weight_map\":{" + map + "}}");
        for (Path source : List.of(dir, dir.resolve(Checkpoint.INDEX_NAME))) {
            try (Checkpoint checkpoint = Checkpoint.open(source)) {
                assertEquals(MODEL.size(), checkpoint.tensors().size());
                assertEquals("12345", checkpoint.metadata().get("total_size"));
                Path qnat = dir.resolve("sharded.qnat");
                Quantizer.Summary summary = Quantizer.quantize(checkpoint, qnat, Quantizer.Options.defaults()
                        .withSelection(t -> t.name().contains("q_proj")));
                assertEquals(1, summary.quantized());
                try (QnatFile file = QnatFile.open(qnat)) {
                    file.verify();
                    assertEquals(MODEL.size(), file.tensors().size());
                }
            }
        }
    }

    @Test
    void aWeightMapThatDisagreesWithItsShardsIsRefused() throws Exception {
        writeCheckpoint(dir.resolve("a.safetensors"), MODEL.subList(0, 2), 4);
        Files.writeString(dir.resolve(Checkpoint.INDEX_NAME), "{\"weight_map\":{\"" + MODEL.get(0).name()
                + "\":\"a.safetensors\",\"missing.weight\":\"a.safetensors\"}}");
        FormatException e = assertThrows(FormatException.class, () -> Checkpoint.open(dir).close());
        assertTrue(e.getMessage().contains("'" + MODEL.get(1).name() + "'") || e.getMessage().contains("missing.weight"),
                e.getMessage());
        Files.writeString(dir.resolve(Checkpoint.INDEX_NAME), "{\"weight_map\":{\"x\":\"../escape.safetensors\"}}");
        e = assertThrows(FormatException.class, () -> Checkpoint.open(dir).close());
        assertTrue(e.getMessage().contains("not a file beside the index"), e.getMessage());
    }

    @Test
    void quantizingANonFloatTensorIsRefusedByName() throws Exception {
        Path original = dir.resolve("m.safetensors");
        writeCheckpoint(original, MODEL, 5);
        try (Checkpoint checkpoint = Checkpoint.open(original)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Quantizer.quantize(checkpoint,
                    dir.resolve("x.qnat"), Quantizer.Options.defaults().withSelection(t -> true)));
            assertTrue(e.getMessage().contains("'position_ids' is I64"), e.getMessage());
        }
    }

    /**
     * Tensors larger than a written piece (8 MiB) come back, in pieces, exactly as each tensor dequantizes
     * whole: NF4 with block sizes of which a piece holds a whole number and not (8 MiB of F32 is 2^21
     * elements, not a multiple of 30), with and without double quantization, to its own dtype and to
     * BF16; a large RAW tensor byte for byte.
     */
    @Test
    void largeTensorsAreWrittenInPiecesAsTheyDequantizeWhole() throws Exception {
        SplittableRandom random = new SplittableRandom(7);
        int n = 3_000_011;
        Path qnat = dir.resolve("large.qnat");
        try (Arena arena = Arena.ofShared()) { // read by the writer's threads
            MemorySegment floats = arena.allocate(4L * n, 64);
            for (long i = 0; i < n; i++) {
                floats.setAtIndex(F32, i, (float) (random.nextGaussian() * (random.nextInt(500) == 0 ? 1.0 : 0.02)));
            }
            List<dev.qnat.format.TensorToWrite> tensors = List.of(
                    dev.qnat.format.TensorToWrite.nf4("even", new long[] {n}, DType.F32, floats, 64, true),
                    dev.qnat.format.TensorToWrite.nf4("block30", new long[] {n}, DType.F32, floats, 30, false),
                    dev.qnat.format.TensorToWrite.raw("raw", new long[] {n}, DType.F32, floats));
            dev.qnat.format.QnatWriter.write(qnat, Map.of(), tensors, 2, dev.qnat.format.QnatWriter.Progress.NONE);
        }
        for (FloatType type : new FloatType[] {null, FloatType.BF16}) {
            Path back = dir.resolve("back-" + type + ".safetensors");
            try (QnatFile file = QnatFile.open(qnat); Arena arena = Arena.ofConfined()) {
                Dequantizer.toSafetensors(file, back, type, false);
                try (SafetensorsFile restored = SafetensorsFile.open(back)) {
                    for (var tensor : file.tensors()) {
                        MemorySegment out = restored.tensor(tensor.name()).orElseThrow().data();
                        if (tensor.encoding() == Encoding.RAW) {
                            assertEquals(-1, tensor.data().mismatch(out), tensor.name());
                            continue;
                        }
                        FloatType to = type != null ? type : FloatType.F32;
                        MemorySegment whole = arena.allocate(n * to.byteSize());
                        tensor.dequantize(whole, to);
                        assertEquals(-1, whole.mismatch(out), tensor.name() + " to " + to);
                    }
                }
            }
        }
    }
}
