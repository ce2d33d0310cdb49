package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.qnat.TestJvm;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A QNAT file over 2 GiB, written by a JVM with a 256 MiB heap: nothing is buffered on the heap. The
 * inputs are sparse files mapped read-only (all zeros), so the test costs disk only for its output.
 */
class LargeFileTest {
    private static final long RAW_BYTES = (2L << 30) + 12345;
    private static final long NF4_ELEMENTS = 1L << 28;

    @TempDir
    Path dir;

    /** Runs in the child JVM: args are the output path and the folder for the sparse inputs. */
    public static final class Writer {
        public static void main(String[] args) throws Exception {
            Path out = Path.of(args[0]);
            Path raw = sparse(Path.of(args[1], "raw.bin"), RAW_BYTES);
            Path floats = sparse(Path.of(args[1], "floats.bin"), 4 * NF4_ELEMENTS);
            try (Arena arena = Arena.ofShared(); FileChannel a = FileChannel.open(raw); FileChannel b = FileChannel.open(floats)) {
                MemorySegment rawData = a.map(FileChannel.MapMode.READ_ONLY, 0, RAW_BYTES, arena);
                MemorySegment floatData = b.map(FileChannel.MapMode.READ_ONLY, 0, 4 * NF4_ELEMENTS, arena);
                QnatWriter.write(out, Map.of("note", "large"), List.of(
                        TensorToWrite.raw("embed", new long[] {RAW_BYTES}, DType.U8, rawData),
                        TensorToWrite.nf4("w", new long[] {1 << 14, NF4_ELEMENTS >> 14}, DType.F32, floatData, 64, true)));
            }
            System.out.println("heap max " + Runtime.getRuntime().maxMemory());
        }

        private static Path sparse(Path path, long size) throws Exception {
            try (RandomAccessFile file = new RandomAccessFile(path.toFile(), "rw")) {
                file.setLength(size);
            }
            return path;
        }
    }

    @Test
    void overTwoGibibytesWithA256MebibyteHeap() throws Exception {
        long needed = RAW_BYTES + NF4_ELEMENTS / 2 + (1L << 30);
        long usable = Files.getFileStore(dir).getUsableSpace();
        assumeTrue(usable > 2 * needed, "needs " + 2 * needed + " bytes free in " + dir + ", has " + usable);
        Path out = dir.resolve("large.qnat");
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx256m", "--add-modules", "jdk.incubator.vector", "-cp", TestJvm.classPath(),
                Writer.class.getName(), out.toString(), dir.toString()));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        assertTrue(process.waitFor(300, TimeUnit.SECONDS), "the writer did not finish in 5 minutes");
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), output);
        long heap = Long.parseLong(output.replaceAll("(?s).*heap max (\\d+).*", "$1"));
        assertTrue(heap <= 256L << 20, "the writer ran with a heap of " + heap + " bytes");
        try (QnatFile qnat = QnatFile.open(out)) {
            assertTrue(qnat.fileSize() > 2L << 30, "size " + qnat.fileSize());
            qnat.verify();
            QnatTensor embed = qnat.tensor("embed").orElseThrow();
            assertEquals(RAW_BYTES, embed.data().byteSize());
            QnatTensor w = qnat.tensor("w").orElseThrow();
            assertEquals(NF4_ELEMENTS, w.elementCount());
            // All-zero input: every code is 7 (0x77) and every block's absmax 0.
            assertEquals(0x77, Byte.toUnsignedInt(w.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, NF4_ELEMENTS / 2 - 1)));
        }
    }
}
