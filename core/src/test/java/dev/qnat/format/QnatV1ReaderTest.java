package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.Nf4Codebook;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Files written byte for byte as qlora-rs's export_native writes them, wrong offsets and all. */
class QnatV1ReaderTest {
    @TempDir
    Path dir;

    private static SeedV1Writer.Tensor tensor(String name, long[] shape, int blockSize, boolean zeroPoints,
                                              boolean quantizedScales, SplittableRandom random) {
        long count = Arrays.stream(shape).reduce(1, Math::multiplyExact);
        int blocks = (int) (count / blockSize);
        byte[] data = new byte[(int) (count / 2)];
        random.nextBytes(data);
        float[] scales = new float[blocks];
        float[] zp = zeroPoints ? new float[blocks] : null;
        for (int b = 0; b < blocks; b++) {
            scales[b] = (float) random.nextDouble(0.001, 2);
            if (zp != null) {
                zp[b] = (float) random.nextDouble(-1, 1);
            }
        }
        byte[] q = null;
        float[] qs = null;
        if (quantizedScales) {
            q = new byte[blocks];
            random.nextBytes(q);
            qs = new float[] {0.0123f};
        }
        return new SeedV1Writer.Tensor(name, shape, blockSize, data, scales, zp, q, qs);
    }

    private static float expected(SeedV1Writer.Tensor t, int i) {
        int code = (t.data()[i / 2] >> (4 * (i & 1))) & 0xF;
        int block = i / t.blockSize();
        float zp = t.zeroPoints() == null ? 0f : t.zeroPoints()[block];
        return (Nf4Codebook.level(code) + zp) * t.scales()[block];
    }

    @ParameterizedTest
    @CsvSource({
        "qlora-model, qlora, 7",
        "m, t, 21",
        "a-very-long-model-name-here, llama, -9",
        "模型, 类型, 11",
    })
    void offsetsAreCorrectedByTheSeedsError(String modelName, String modelType, long error) throws Exception {
        SplittableRandom random = new SplittableRandom(1);
        List<SeedV1Writer.Tensor> tensors = List.of(
                tensor("w1", new long[] {64, 64}, 64, false, false, random),
                tensor("w2.zp", new long[] {32, 32}, 64, true, false, random),
                tensor("w3.dq", new long[] {128}, 32, false, true, random),
                tensor("权重.both", new long[] {2, 3, 64}, 64, true, true, random));
        Path file = dir.resolve("v1.qnat");
        Files.write(file, SeedV1Writer.write(tensors, modelName, modelType, 2));
        try (QnatFile qnat = QnatFile.open(file)) {
            assertEquals(1, qnat.version());
            assertEquals(error, qnat.v1OffsetError().orElseThrow());
            assertEquals(Map.of("model_name", modelName, "model_type", modelType, "compute_dtype", "BF16"), qnat.metadata());
            assertEquals(4, qnat.tensors().size());
            for (SeedV1Writer.Tensor t : tensors) {
                QnatTensor read = qnat.tensor(t.name()).orElseThrow();
                assertArrayEquals(t.shape(), read.shape());
                assertEquals(t.blockSize(), read.blockSize());
                assertEquals(t.zeroPoints() != null, read.hasZeroPoints());
                float[] values = read.toFloats();
                for (int i = 0; i < values.length; i++) {
                    assertEquals(expected(t, i), values[i], t.name() + " element " + i);
                }
            }
            assertFalse(qnat.tensor("missing").isPresent());
        }
    }

    @Test
    void anOptionalPartOfAnUnknownSizeIsNamed() throws Exception {
        SplittableRandom random = new SplittableRandom(2);
        SeedV1Writer.Tensor good = tensor("good", new long[] {64}, 64, false, false, random);
        byte[] bytes = SeedV1Writer.write(List.of(good), "qlora-model", "qlora", 0);
        Path file = dir.resolve("extra.qnat");
        Files.write(file, Arrays.copyOf(bytes, bytes.length + 3)); // 3 stray bytes after the last tensor
        FormatException e = assertThrows(FormatException.class, () -> QnatFile.open(file).close());
        assertTrue(e.getMessage().contains("'good'") && e.getMessage().contains("none of 0"), e.getMessage());
    }

    /**
     * v1 records no lengths, so a cut that drops exactly the last tensor's optional parts leaves a valid
     * file with fewer parts: those lengths are accepted, every other one is refused.
     */
    @Test
    void everyTruncationIsRefusedUnlessItDropsExactlyTheLastOptionalParts() throws Exception {
        SplittableRandom random = new SplittableRandom(3);
        SeedV1Writer.Tensor last = tensor("b", new long[] {128}, 64, false, true, random);
        byte[] bytes = SeedV1Writer.write(List.of(tensor("a", new long[] {64}, 64, true, false, random), last),
                "qlora-model", "qlora", 0);
        long n = last.scales().length;
        long lastBaseEnd = bytes.length - (n + 4);
        List<Long> validExtras = List.of(0L, 4 * n, n + 4, 5 * n + 4);
        int accepted = 0;
        for (int length = 0; length < bytes.length; length++) {
            Path file = dir.resolve("cut" + length + ".qnat");
            Files.write(file, Arrays.copyOf(bytes, length));
            if (validExtras.contains(length - lastBaseEnd)) {
                try (QnatFile qnat = QnatFile.open(file)) {
                    assertEquals(2, qnat.tensors().size());
                    accepted++;
                }
            } else {
                assertThrows(FormatException.class, () -> QnatFile.open(file).close(), "cut at " + length);
            }
            Files.delete(file);
        }
        assertEquals(1, accepted, "only the cut that drops the quantized scales of 'b' reads");
    }

    @Test
    void anOffsetThatDisagreesWithTheHeadersIsRefused() throws Exception {
        SplittableRandom random = new SplittableRandom(4);
        List<SeedV1Writer.Tensor> tensors = new ArrayList<>(List.of(tensor("a", new long[] {64}, 64, false, false, random)));
        byte[] bytes = SeedV1Writer.write(tensors, "qlora-model", "qlora", 0);
        // The stored offset of the only tensor sits 12 bytes before the end of the headers (after block_size).
        int headersEnd = 28 + 4 + 11 + 4 + 5 + 1 + 4 + 1 + 4 + 8 + 4 + 8 + 4;
        int offsetField = headersEnd - 12;
        bytes[offsetField] += 1;
        Path file = dir.resolve("moved.qnat");
        Files.write(file, bytes);
        FormatException e = assertThrows(FormatException.class, () -> QnatFile.open(file).close());
        assertTrue(e.getMessage().contains("data_offset") && e.getMessage().contains("starts after the headers"),
                e.getMessage());
    }
}
