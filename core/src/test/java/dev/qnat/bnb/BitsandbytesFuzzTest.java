package dev.qnat.bnb;

import dev.qnat.fuzz.BoundedFuzzTest;
import dev.qnat.format.FormatException;
import dev.qnat.safetensors.Checkpoint;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The bitsandbytes importer (and the safetensors file under it) on arbitrary bytes. */
class BitsandbytesFuzzTest {
    private static final Path DIR = temp();

    private static Path temp() {
        try {
            Path dir = Files.createTempDirectory("qnat-fuzz-bnb");
            dir.toFile().deleteOnExit();
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @BoundedFuzzTest
    void importer(byte[] input) throws IOException {
        Path file = DIR.resolve("input.safetensors");
        Files.write(file, input);
        try (Checkpoint checkpoint = Checkpoint.open(file)) {
            BitsandbytesImport.plan(checkpoint);
        } catch (FormatException expected) {
            // the documented answer to bad input
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
