package dev.qnat.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Both ways of reserving a file's blocks, writing zeros and posix_fallocate: the blocks are there
 * afterwards, and a disk without room is an IOException that says so. The full-disk cases mount a
 * 1 MiB tmpfs, which needs root; elsewhere they are skipped and say why.
 */
class DiskSpaceTest {
    private static final long SIZE = 3L << 20;

    @TempDir
    Path dir;

    private static boolean run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
    }

    /** The 512-byte blocks the file system holds for {@code path}, by stat(1). */
    private static long allocatedBlocks(Path path) throws Exception {
        Process p = new ProcessBuilder("stat", "-c", "%b", path.toString()).start();
        String out = new String(p.getInputStream().readAllBytes()).strip();
        assumeTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0, "no GNU stat(1) here");
        return Long.parseLong(out);
    }

    private static void reserve(Path path, long size, long zeroFillBytes) throws IOException {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            DiskSpace.reserve(channel, path, size, zeroFillBytes);
        }
    }

    @Test
    void writingZerosAllocatesEveryBlockAndSizesTheFile() throws Exception {
        Path path = dir.resolve("zeros");
        reserve(path, SIZE + 5, Long.MAX_VALUE);
        assertEquals(SIZE + 5, Files.size(path));
        assertTrue(allocatedBlocks(path) * 512 >= SIZE, "blocks: " + allocatedBlocks(path));
        byte[] content = Files.readAllBytes(path);
        for (byte b : content) {
            assertEquals(0, b);
        }
    }

    @Test
    void fallocateAllocatesEveryBlock() throws Exception {
        Path path = dir.resolve("fallocate");
        reserve(path, SIZE, 0);
        // posix_fallocate does not grow what the channel reports; AtomicMappedFile sizes the file after it.
        long blocks = allocatedBlocks(path);
        assumeTrue(blocks > 0, "no posix_fallocate here (not glibc, or native access denied): nothing reserved");
        assertTrue(blocks * 512 >= SIZE, "blocks: " + blocks);
    }

    @Test
    void aFullDiskIsAnIoErrorEitherWay() throws Exception {
        Path small = Files.createDirectories(dir.resolve("small"));
        assumeTrue(run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small.toString()),
                "cannot mount a small tmpfs here (needs root and mount), so no full disk to test against");
        try {
            for (long zeroFillBytes : new long[] {Long.MAX_VALUE, 0}) {
                Path path = small.resolve("file" + zeroFillBytes);
                IOException e = assertThrows(IOException.class, () -> reserve(path, SIZE, zeroFillBytes));
                assertTrue(e.getMessage().contains("not enough disk space") && e.getMessage().contains(path.toString()),
                        e.getMessage());
                Files.delete(path);
            }
        } finally {
            run("umount", small.toString());
        }
    }
}
