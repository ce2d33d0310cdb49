package dev.qnat.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A StreamedFile holds exactly the bytes staged, whatever the order of submission, the range sizes and
 * alignments and the head's length, with direct I/O and without; generated cases from a seed that is
 * printed on failure ({@code -Dqnat.test.seed=N} replays it).
 */
class StreamedFileTest {
    @TempDir
    Path dir;

    private static long seed() {
        String replay = System.getProperty("qnat.test.seed", "").strip();
        return replay.isEmpty() ? System.nanoTime() : Long.parseLong(replay);
    }

    /** The ranges, contiguous, that cover {@code [from, to)}: sizes from 1 byte to a few blocks. */
    private static List<long[]> ranges(SplittableRandom random, long from, long to) {
        List<long[]> ranges = new ArrayList<>();
        for (long at = from; at < to; ) {
            long length = switch (random.nextInt(4)) {
                case 0 -> 1 + random.nextInt(16);
                case 1 -> StreamedFile.BLOCK;
                default -> 1 + random.nextInt(3 * StreamedFile.BLOCK);
            };
            long end = Math.min(to, at + length);
            ranges.add(new long[] {at, end});
            at = end;
        }
        return ranges;
    }

    private static long size(SplittableRandom random) {
        return switch (random.nextInt(4)) {
            case 0 -> random.nextInt(3) * (long) StreamedFile.BLOCK;
            case 1 -> 1 + random.nextInt(100);
            default -> 1 + random.nextInt(10 * StreamedFile.BLOCK);
        };
    }

    /** Writes a generated file through {@code channel} (direct or not) in shuffled order and checks every byte. */
    private void writeAndCheck(long seed, int round, boolean direct) throws IOException {
        SplittableRandom random = new SplittableRandom(seed).split();
        for (int skip = 0; skip < round; skip++) {
            random = random.split();
        }
        long size = size(random);
        long headLength = random.nextInt(3) == 0 ? 0 : random.nextLong(size + 1);
        byte[] expected = new byte[(int) size];
        new Random(random.nextLong()).nextBytes(expected);
        List<long[]> ranges = ranges(random, headLength, size);
        Collections.shuffle(ranges, new Random(random.nextLong()));
        String context = "seed " + seed + ", round " + round + ", direct " + direct + ", size " + size + ", head "
                + headLength + ", " + ranges.size() + " ranges";
        Path path = dir.resolve("file-" + round + "-" + direct);
        try (FileChannel plain = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
             FileChannel channel = direct ? FileChannel.open(path, StandardOpenOption.WRITE, AtomicMappedFile.DIRECT)
                     : plain) {
            StreamedFile file = new StreamedFile(channel, plain, size, headLength, Math.max(1, ranges.size()));
            try {
                List<StreamedFile.Range> staged = new ArrayList<>();
                for (long[] range : ranges) {
                    StreamedFile.Range r = file.stage(range[0], range[1]);
                    r.bytes().copyFrom(MemorySegment.ofArray(expected).asSlice(range[0], range[1] - range[0]));
                    staged.add(r);
                }
                assertFalse(file.complete(), context);
                staged.forEach(file::submit);
                file.writeHead(MemorySegment.ofArray(expected).asSlice(0, headLength));
                assertTrue(file.complete(), context);
            } finally {
                file.stop();
            }
        }
        assertEquals(size, Files.size(path), context);
        assertArrayEquals(expected, Files.readAllBytes(path), context);
    }

    private boolean directIoWorksHere() {
        if (AtomicMappedFile.DIRECT == null) {
            return false;
        }
        try (FileChannel channel = FileChannel.open(dir.resolve("probe"), StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE, AtomicMappedFile.DIRECT)) {
            return true;
        } catch (IOException | UnsupportedOperationException e) {
            return false;
        }
    }

    @Test
    void holdsExactlyTheStagedBytesInAnySubmissionOrder() throws IOException {
        long seed = seed();
        boolean direct = directIoWorksHere();
        for (int round = 0; round < 150; round++) {
            try {
                writeAndCheck(seed, round, false);
                if (direct) {
                    writeAndCheck(seed, round, true);
                }
            } catch (AssertionError | RuntimeException e) {
                System.err.println("StreamedFileTest: replay with -Dqnat.test.seed=" + seed + " (round " + round + ")");
                throw e;
            }
        }
    }

    @Test
    void manyThreadsWithFewStagedRangesFinish() throws Exception {
        long seed = seed();
        SplittableRandom random = new SplittableRandom(seed);
        long size = 64L * StreamedFile.BLOCK + 123;
        byte[] expected = new byte[(int) size];
        new Random(seed).nextBytes(expected);
        List<long[]> ranges = ranges(random, 100, size);
        Path path = dir.resolve("threads");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            StreamedFile file = new StreamedFile(channel, channel, size, 100, 2);
            try {
                List<Future<?>> done = new ArrayList<>();
                for (long[] range : ranges) { // taken in order, finished in any
                    done.add(pool.submit(() -> {
                        StreamedFile.Range r = file.stage(range[0], range[1]);
                        r.bytes().copyFrom(MemorySegment.ofArray(expected).asSlice(range[0], range[1] - range[0]));
                        file.submit(r);
                        return null;
                    }));
                }
                for (Future<?> future : done) {
                    future.get(60, TimeUnit.SECONDS);
                }
                file.writeHead(MemorySegment.ofArray(expected).asSlice(0, 100));
            } finally {
                file.stop();
            }
        } finally {
            pool.shutdownNow();
        }
        assertArrayEquals(expected, Files.readAllBytes(path), "seed " + seed);
    }

    @Test
    void refusesAnIncompleteBodyAndWakesWaitersWhenAbandoned() throws Exception {
        Path path = dir.resolve("incomplete");
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            StreamedFile file = new StreamedFile(channel, channel, 10_000, 10, 1);
            try {
                StreamedFile.Range later = file.stage(5000, 6000); // the one range allowed besides the next
                file.submit(later);
                assertThrows(IllegalStateException.class, () -> file.submit(later));
                assertThrows(IllegalStateException.class, () -> file.writeHead(MemorySegment.ofArray(new byte[10])));
                assertThrows(IllegalArgumentException.class, () -> file.stage(5, 20));
                IllegalStateException cause = new IllegalStateException("a worker failed");
                CountDownLatch waiting = new CountDownLatch(1);
                ExecutorService pool = Executors.newSingleThreadExecutor();
                try {
                    Future<?> waiter = pool.submit(() -> {
                        waiting.countDown();
                        return file.stage(7000, 8000); // not the next range, and one is staged: waits
                    });
                    waiting.await();
                    Thread.sleep(100);
                    assertFalse(waiter.isDone());
                    file.abandon(cause);
                    Exception e = assertThrows(Exception.class, () -> waiter.get(10, TimeUnit.SECONDS));
                    assertSame(cause, e.getCause(), "the waiter throws the real failure");
                } finally {
                    pool.shutdownNow();
                }
                assertSame(cause, assertThrows(IllegalStateException.class, () -> file.stage(10, 20)));
            } finally {
                file.stop();
            }
        }
    }

    @Test
    void aFailedWriteFailsTheFileInsteadOfHangingIt() throws Exception {
        Path path = dir.resolve("read-only");
        Files.write(path, new byte[0]);
        try (FileChannel readOnly = FileChannel.open(path, StandardOpenOption.READ)) {
            StreamedFile file = new StreamedFile(readOnly, readOnly, 3 * StreamedFile.BLOCK, 0, 4);
            try {
                StreamedFile.Range range = file.stage(0, 3 * StreamedFile.BLOCK);
                file.submit(range);
                IOException e = assertThrows(IOException.class, () -> file.writeHead(MemorySegment.ofArray(new byte[0])));
                assertTrue(e.getMessage().contains("writing bytes 0 to 12288 failed"), e.getMessage());
                assertThrows(java.io.UncheckedIOException.class, () -> file.stage(0, 1));
            } finally {
                file.stop();
            }
        }
    }

    @Test
    void writesAllOrNothingThroughATempFile() throws IOException {
        Path target = dir.resolve("target");
        Files.writeString(target, "before");
        assertThrows(IllegalStateException.class, () -> AtomicMappedFile.writeStreamed(target, 5000, 8, 4, file -> {
            StreamedFile.Range range = file.stage(8, 5000);
            range.bytes().fill((byte) 1);
            file.submit(range); // and never the head
        }, List.of()));
        assertEquals("before", Files.readString(target));
        try (var listing = Files.list(dir)) {
            assertEquals(List.of(target), listing.filter(p -> !p.getFileName().toString().equals("probe")).toList());
        }
        byte[] expected = new byte[5000];
        java.util.Arrays.fill(expected, (byte) 1);
        System.arraycopy("new head".getBytes(), 0, expected, 0, 8);
        AtomicMappedFile.writeStreamed(target, 5000, 8, 4, file -> {
            StreamedFile.Range range = file.stage(8, 5000);
            range.bytes().fill((byte) 1);
            file.submit(range);
            file.writeHead(MemorySegment.ofArray("new head".getBytes()));
        }, List.of());
        assertArrayEquals(expected, Files.readAllBytes(target));
    }
}
