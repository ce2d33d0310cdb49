package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.qnat.safetensors.SafetensorsFile;
import dev.qnat.safetensors.SafetensorsWriter;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Both writers refuse names they could not write as given; valid Unicode beyond the BMP is kept. */
class TensorNamesTest {
    private static final MemorySegment FOUR_BYTES = MemorySegment.ofArray(new byte[4]);

    @TempDir
    Path dir;

    @Test
    void loneSurrogatesAndEmptyNamesAreRefusedByBothWriters() {
        Map<String, String> refusals = Map.of(
                "a\ud800b", "tensor 'a\\uD800b' has a lone surrogate \\uD800 at character 1, which UTF-8 cannot encode",
                "ab\udc00", "tensor 'ab\\uDC00' has a lone surrogate \\uDC00 at character 2, which UTF-8 cannot encode",
                "\ud83d\ude00\ud83d", "tensor '\ud83d\ude00\\uD83D' has a lone surrogate \\uD83D at character 2, which UTF-8 "
                        + "cannot encode",
                "", "a tensor name is empty");
        refusals.forEach((name, message) -> {
            assertEquals(message, assertThrows(IllegalArgumentException.class,
                    () -> TensorToWrite.raw(name, new long[] {1}, DType.F32, FOUR_BYTES)).getMessage());
            assertEquals(message, assertThrows(IllegalArgumentException.class,
                    () -> SafetensorsWriter.Entry.copy(name, DType.F32, new long[] {1}, FOUR_BYTES)).getMessage());
        });
    }

    @Test
    void surrogatePairsAreWrittenAndReadBack() throws Exception {
        String name = "emoji.\ud83d\ude00.weight";
        Path qnat = dir.resolve("pair.qnat");
        QnatWriter.write(qnat, Map.of(), List.of(TensorToWrite.raw(name, new long[] {1}, DType.F32, FOUR_BYTES)));
        try (QnatFile file = QnatFile.open(qnat)) {
            assertEquals(name, file.tensors().getFirst().name());
        }
        Path safetensors = dir.resolve("pair.safetensors");
        SafetensorsWriter.write(safetensors, Map.of(), List.of(SafetensorsWriter.Entry.copy(name, DType.F32, new long[] {1},
                FOUR_BYTES)));
        try (SafetensorsFile file = SafetensorsFile.open(safetensors)) {
            assertEquals(name, file.tensors().getFirst().name());
        }
    }
}
