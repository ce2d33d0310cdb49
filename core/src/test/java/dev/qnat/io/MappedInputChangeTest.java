package dev.qnat.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.bnb.BitsandbytesExport;
import dev.qnat.convert.Dequantizer;
import dev.qnat.convert.Quantizer;
import dev.qnat.format.DType;
import dev.qnat.format.QnatFile;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Inputs that change under their mapping while a writer reads them: truncated (reads past the new end
 * fault, which used to kill the JVM with SIGBUS in the vector kernels and the CRC intrinsic) or written
 * to. Each must end in an I/O error naming the file, with no output and no temp file left.
 */
class MappedInputChangeTest {
    private static final int ELEMENTS = 1 << 20;

    @TempDir
    Path dir;
    Path model;

    @BeforeEach
    void fourMegabyteModel() throws IOException {
        model = dir.resolve("model.safetensors");
        float[] values = new float[ELEMENTS];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i * 0.001);
        }
        SafetensorsWriter.write(model, Map.of(), List.of(SafetensorsWriter.Entry.copy("w", DType.F32,
                new long[] {1024, 1024}, MemorySegment.ofArray(values))));
    }

    private static void truncate(Path file, long size) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
            channel.truncate(size);
        }
    }

    private List<String> listing() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private void assertNamesTheInput(IOException e, Path input) throws IOException {
        assertTrue(e instanceof FileSnapshot.InputChangedException, e.toString());
        assertTrue(e.getMessage().contains(input.toRealPath().toString()), e.getMessage());
    }

    /** Runs the kernels until C2 has compiled them: the interpreter's reads never crashed, compiled vector loads did. */
    private static void warmUpTheKernels() {
        float[] values = new float[1 << 20];
        java.util.Arrays.fill(values, 0.5f);
        byte[] codes = new byte[values.length / 2];
        float[] absmax = new float[values.length / 64];
        for (int i = 0; i < 100; i++) {
            dev.qnat.nf4.Nf4.quantize(values, 64, codes, absmax);
            dev.qnat.nf4.Nf4.dequantize(codes, absmax, 64, values);
        }
    }

    @Test
    void quantizingATruncatedInputIsAnIoErrorNamingIt() throws IOException {
        warmUpTheKernels();
        Path out = dir.resolve("model.qnat");
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            truncate(model, 1 << 20);
            IOException e = assertThrows(IOException.class, () -> Quantizer.quantize(checkpoint, out,
                    Quantizer.Options.defaults().withThreads(2)));
            assertNamesTheInput(e, model);
        }
        assertEquals(List.of("model.safetensors"), listing(), "no output, no temp file");
    }

    @Test
    void exportingATruncatedInputToBitsandbytesIsAnIoErrorNamingIt() throws IOException {
        Path out = dir.resolve("bnb.safetensors");
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            truncate(model, 1 << 20);
            IOException e = assertThrows(IOException.class, () -> BitsandbytesExport.export(checkpoint, out,
                    Quantizer.Options.defaults()));
            assertNamesTheInput(e, model);
        }
        assertEquals(List.of("model.safetensors"), listing(), "no model, no config, no temp file");
    }

    @Test
    void dequantizingATruncatedQnatFileIsAnIoErrorNamingIt() throws IOException {
        warmUpTheKernels();
        Path qnat = dir.resolve("model.qnat");
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            Quantizer.quantize(checkpoint, qnat, Quantizer.Options.defaults());
        }
        Path out = dir.resolve("restored.safetensors");
        try (QnatFile file = QnatFile.open(qnat)) {
            truncate(qnat, Files.size(qnat) / 2);
            IOException e = assertThrows(IOException.class, () -> Dequantizer.toSafetensors(file, out, null, false));
            assertNamesTheInput(e, qnat);
        }
        assertEquals(List.of("model.qnat", "model.safetensors"), listing());
    }

    @Test
    void readingATruncatedQnatFileThroughTheLibraryThrowsInsteadOfCrashing() throws IOException {
        Path qnat = dir.resolve("model.qnat");
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            Quantizer.quantize(checkpoint, qnat, Quantizer.Options.defaults().withDoubleQuant(false));
        }
        try (QnatFile file = QnatFile.open(qnat)) {
            truncate(qnat, 4096);
            // The CRC check on first read, then the kernels: each read of the vanished pages is an error.
            assertThrows(InternalError.class, () -> file.tensor("w").orElseThrow().toFloats());
            assertThrows(InternalError.class, file::verify);
        }
    }

    @Test
    void anInputWrittenToMeanwhileFailsTheWrite() throws IOException {
        Path out = dir.resolve("model.qnat");
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            Files.setLastModifiedTime(model, FileTime.fromMillis(Files.getLastModifiedTime(model).toMillis() - 10_000));
            IOException e = assertThrows(IOException.class, () -> Quantizer.quantize(checkpoint, out,
                    Quantizer.Options.defaults()));
            assertNamesTheInput(e, model);
            assertTrue(e.getMessage().contains("written to"), e.getMessage());
        }
        assertFalse(Files.exists(out));
    }

    @Test
    void anInputReplacedByRenameIsNoChange() throws IOException {
        Path out = dir.resolve("model.qnat");
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            Path other = dir.resolve("other.safetensors");
            Files.copy(model, other);
            Files.move(other, model, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            Quantizer.quantize(checkpoint, out, Quantizer.Options.defaults());
        }
        assertTrue(Files.exists(out), "the mapping still read the opened file, whole");
    }
}
