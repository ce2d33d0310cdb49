package dev.qnat.safetensors;

import dev.qnat.fuzz.BoundedFuzzTest;
import dev.qnat.fuzz.FuzzDirectory;
import dev.qnat.format.DType;
import dev.qnat.format.FormatException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/** A sharded checkpoint's index.json, arbitrary bytes beside two valid shards. */
class IndexFuzzTest {
    private static final Path DIR = shards();

    private static Path shards() {
        try {
            Path dir = FuzzDirectory.create("qnat-fuzz-index");
            for (String shard : List.of("a", "b")) {
                SafetensorsWriter.write(dir.resolve(shard + ".safetensors"), Map.of(), List.of(SafetensorsWriter.Entry.copy(
                        shard + ".weight", DType.F32, new long[] {2}, MemorySegment.ofArray(new byte[8]))));
            }
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @BoundedFuzzTest
    void index(byte[] input) throws IOException {
        Path index = DIR.resolve(Checkpoint.INDEX_NAME);
        Files.write(index, input);
        try (Checkpoint checkpoint = Checkpoint.open(index)) {
            checkpoint.tensors().forEach(t -> t.data().byteSize());
        } catch (FormatException expected) {
            // the documented answer to bad input
        }
    }
}
