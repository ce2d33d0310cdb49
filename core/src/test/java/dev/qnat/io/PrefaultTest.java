package dev.qnat.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Prefault maps pages ahead (seen in /proc/self/smaps on Linux 5.14+) and changes no byte. */
class PrefaultTest {
    private static final long SIZE = 8L << 20;

    @TempDir
    Path dir;

    /** Resident bytes of the mapping that starts at {@code segment}'s address, from /proc/self/smaps. */
    private static long residentBytes(MemorySegment segment) throws IOException {
        String start = HexFormat.of().toHexDigits(segment.address()).replaceFirst("^0+(?=.)", "") + "-";
        boolean inMapping = false;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                inMapping = line.startsWith(start);
            } else if (inMapping && line.startsWith("Rss:")) {
                return 1024 * Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new AssertionError("no mapping at " + start + " in /proc/self/smaps");
    }

    private static void assumeLinuxWithPopulate() {
        String[] version = System.getProperty("os.version", "0.0").split("[.-]");
        int major = Integer.parseInt(version[0]);
        int minor = version.length > 1 ? Integer.parseInt(version[1]) : 0;
        assumeTrue(System.getProperty("os.name").equals("Linux") && (major > 5 || major == 5 && minor >= 14),
                "MADV_POPULATE_READ/WRITE need Linux 5.14 or newer");
    }

    @Test
    void mapsPagesForWritingAndForReadingWithoutChangingThem() throws IOException {
        assumeLinuxWithPopulate();
        Path path = dir.resolve("pages");
        byte[] content = new byte[(int) SIZE];
        for (int i = 0; i < content.length; i++) {
            content[i] = (byte) (i * 31 + 7);
        }
        Files.write(path, content);
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena arena = Arena.ofConfined()) {
            MemorySegment writable = channel.map(FileChannel.MapMode.READ_WRITE, 0, SIZE, arena);
            MemorySegment readable = channel.map(FileChannel.MapMode.READ_ONLY, 0, SIZE, arena);
            assertEquals(0, residentBytes(writable), "a fresh mapping has no pages yet");
            assertEquals(0, residentBytes(readable));
            // An unaligned part: the pages under it, from the one holding its first byte, get mapped.
            // Smaller than Prefault.MIN_BYTES, so the test asks for population whatever the size.
            try (Prefault.Ahead ahead = Prefault.ahead(List.of(new Prefault.Range(writable.asSlice(100, SIZE - 100), true),
                    new Prefault.Range(readable, false)), 0)) {
                // Where the workers would run; here, wait (up to a minute) for every page to be mapped.
                long deadline = System.nanoTime() + 60_000_000_000L;
                while ((residentBytes(writable) < SIZE || residentBytes(readable) < SIZE) && System.nanoTime() < deadline) {
                    Thread.onSpinWait();
                }
            }
            assertEquals(SIZE, residentBytes(writable), "pages mapped for writing");
            assertEquals(SIZE, residentBytes(readable), "pages mapped for reading");
            assertEquals(-1, readable.mismatch(MemorySegment.ofArray(content)));
            writable.set(ValueLayout.JAVA_BYTE, 5, (byte) 99);
            writable.force();
        }
        content[5] = 99;
        assertEquals(-1, java.util.Arrays.mismatch(content, Files.readAllBytes(path)));
    }

    @Test
    void rangesSmallerThanTheMinimumInAllAreLeftToFaultIn() throws IOException, InterruptedException {
        assumeLinuxWithPopulate();
        Path path = dir.resolve("small");
        Files.write(path, new byte[(int) SIZE]);
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena arena = Arena.ofConfined()) {
            MemorySegment writable = channel.map(FileChannel.MapMode.READ_WRITE, 0, SIZE, arena);
            MemorySegment readable = channel.map(FileChannel.MapMode.READ_ONLY, 0, SIZE, arena);
            try (Prefault.Ahead ahead = Prefault.ahead(List.of(new Prefault.Range(writable, true),
                    new Prefault.Range(readable, false)), 2 * SIZE + 1)) {
                Thread.sleep(200); // ample time for a populating thread to map 16 MiB
            }
            assertEquals(0, residentBytes(writable));
            assertEquals(0, residentBytes(readable));
        }
        assertTrue(Prefault.MIN_BYTES > 2 * SIZE, "the default minimum leaves such ranges alone too");
    }

    @Test
    void heapMemoryAndEmptyRangesAreLeftAlone() {
        byte[] heap = {1, 2, 3};
        try (Prefault.Ahead ahead = Prefault.ahead(List.of(new Prefault.Range(MemorySegment.ofArray(heap), true),
                new Prefault.Range(MemorySegment.NULL, false)))) {
            // nothing to do
        }
        assertEquals(-1, java.util.Arrays.mismatch(new byte[] {1, 2, 3}, heap));
    }
}
