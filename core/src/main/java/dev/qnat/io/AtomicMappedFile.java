package dev.qnat.io;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes a file of a size known up front through a read-write mapping, all or nothing: a temp file
 * beside the target is sized once, mapped, filled, forced to disk and renamed onto the target in one
 * atomic step. On any failure the temp file is deleted and the target is left as it was. Temp files of
 * writers that died (killed, say) are removed by the next write to the same target.
 */
public final class AtomicMappedFile {
    /** What fills the mapped file. */
    @FunctionalInterface
    public interface Filler {
        void fill(MemorySegment file) throws IOException;
    }

    /** Marks temp files: {@code .<target name>.qnat-partial.<pid>.<random>}. */
    public static final String PARTIAL_MARK = ".qnat-partial.";

    /**
     * Fault-test hook: with {@code -Dqnat.io.pauseAt=beforeRename} (temp file complete and forced) or
     * {@code afterRename} (target replaced, folder not yet synced) a writer says so on stderr and waits
     * there for a minute, so a test can kill it at exactly that moment.
     */
    private static final String PAUSE_AT = System.getProperty("qnat.io.pauseAt", "");

    /** Temp files being written now; a JVM that is interrupted (Ctrl-C) deletes them on its way out. */
    private static final Set<Path> IN_PROGRESS = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (Path temp : IN_PROGRESS) {
                try {
                    Files.deleteIfExists(temp);
                } catch (IOException e) {
                    // Nothing more can be done on the way out; the next write to the target removes it.
                }
            }
        }, "qnat-partial-cleanup"));
    }

    private AtomicMappedFile() {}

    /** Whether a file name is one of this class's temp files (readers and listings skip them). */
    public static boolean isPartial(Path path) {
        String name = path.getFileName().toString();
        return name.startsWith(".") && name.contains(PARTIAL_MARK);
    }

    /** Creates {@code target} with {@code size} bytes filled by {@code filler}. */
    public static void write(Path target, long size, Filler filler) throws IOException {
        Objects.requireNonNull(filler, "filler");
        Path directory = target.toAbsolutePath().getParent();
        if (!Files.isDirectory(directory)) {
            throw new java.nio.file.NoSuchFileException(directory.toString(), null, "the output folder does not exist");
        }
        removeAbandonedPartials(directory, target.getFileName().toString());
        Path temp = directory.resolve("." + target.getFileName() + PARTIAL_MARK + ProcessHandle.current().pid() + "."
                + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt()));
        boolean renamed = false;
        IN_PROGRESS.add(temp);
        try {
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                    StandardOpenOption.WRITE); Arena arena = Arena.ofShared()) {
                DiskSpace.reserve(temp, size);
                if (size > 0 && channel.size() < size) {
                    channel.write(ByteBuffer.wrap(new byte[1]), size - 1);
                }
                MemorySegment file = channel.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
                filler.fill(file);
                file.force();
            }
            pauseIfAskedAt("beforeRename");
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            renamed = true;
            pauseIfAskedAt("afterRename");
            forceDirectory(directory);
        } finally {
            if (!renamed) {
                Files.deleteIfExists(temp);
            }
            IN_PROGRESS.remove(temp);
        }
    }

    /** Deletes temp files of earlier writes to this target whose process is gone. */
    private static void removeAbandonedPartials(Path directory, String targetName) throws IOException {
        String prefix = "." + targetName + PARTIAL_MARK;
        try (DirectoryStream<Path> partials = Files.newDirectoryStream(directory,
                path -> path.getFileName().toString().startsWith(prefix))) {
            for (Path partial : partials) {
                String[] pidAndRandom = partial.getFileName().toString().substring(prefix.length()).split("\\.");
                boolean alive = pidAndRandom.length == 2 && pidAndRandom[0].matches("\\d{1,18}")
                        && ProcessHandle.of(Long.parseLong(pidAndRandom[0])).isPresent();
                if (!alive) {
                    Files.deleteIfExists(partial);
                }
            }
        }
    }

    private static void pauseIfAskedAt(String point) {
        if (PAUSE_AT.equals(point)) {
            System.err.println("qnat: paused " + point);
            System.err.flush();
            try {
                Thread.sleep(60_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private static void forceDirectory(Path directory) {
        try (FileChannel dir = FileChannel.open(directory, StandardOpenOption.READ)) {
            dir.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // Not every platform can sync a directory; the rename itself is already atomic.
        }
    }
}
