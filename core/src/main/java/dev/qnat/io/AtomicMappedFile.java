package dev.qnat.io;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes a file of a size known up front, all or nothing: a temp file beside the target is sized once,
 * filled through a read-write mapping ({@link #write(Path, long, Filler, List)}) or front to back with
 * direct I/O ({@link #writeStreamed}), forced to disk and renamed onto the target in one atomic step. On
 * any failure the temp file is deleted and the target is left as it was.
 *
 * <p>Before anything is created the target is checked by {@link OutputTarget} against the inputs the
 * filler reads; after the fill the inputs are checked again ({@link FileSnapshot}), so that an input
 * truncated or rewritten meanwhile fails the write instead of producing a file from torn data. A fault
 * while reading a truncated mapping (the JVM's {@code InternalError}) becomes an I/O error naming the file.
 *
 * <p>The writer holds a lock on its temp file until it is renamed. Temp files of writers that died
 * (killed, say) are removed by the next write to the same target; one whose lock is held, by a process
 * in another PID namespace sharing the folder for instance, is left alone.
 */
public final class AtomicMappedFile {
    /** What fills the mapped file. */
    @FunctionalInterface
    public interface Filler {
        /**
         * Writes every byte of the new file; what it leaves unwritten is zero.
         *
         * @param file the read-write mapping of the temp file, exactly the size asked for; valid during this
         *        call only
         * @throws IOException if the content cannot be produced; the write is then abandoned
         */
        void fill(MemorySegment file) throws IOException;
    }

    /** Marks temp files: {@code .<target name>.qnat-partial.<pid>.<random>}. */
    public static final String PARTIAL_MARK = ".qnat-partial.";

    /**
     * Fault-test hook: with {@code -Dqnat.io.pauseAt=beforeFill} (temp file mapped, inputs not yet read),
     * {@code beforeRename} (temp file complete and forced) or {@code afterRename} (target replaced, folder
     * not yet synced) a writer says so on stderr and waits there for a line on stdin, so that a test can
     * change an input, or kill the writer, at exactly that moment.
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

    /**
     * Creates {@code target} with {@code size} bytes filled by {@code filler}, which reads no mapped file.
     *
     * @param target the file to create or replace, checked by {@link OutputTarget#resolve}
     * @param size the file's exact size in bytes, not negative
     * @param filler writes the content into the mapping
     * @throws IOException if the target is refused, the disk lacks the space, or sizing, mapping, filling,
     *         forcing or renaming fails; the target is then left as it was
     */
    public static void write(Path target, long size, Filler filler) throws IOException {
        write(target, size, filler, List.of());
    }

    /**
     * Creates {@code target} with {@code size} bytes filled by {@code filler}, which reads {@code inputs}.
     *
     * @param target the file to create or replace, checked by {@link OutputTarget#resolve}; none of the inputs
     * @param size the file's exact size in bytes, not negative
     * @param filler writes the content into the mapping
     * @param inputs the files the filler reads, as they were opened; empty if it reads none
     * @throws IOException if the target is refused, the disk lacks the space, an input changed during the fill
     *         ({@link FileSnapshot.InputChangedException}), or sizing, mapping, filling, forcing or renaming
     *         fails; the target is then left as it was
     */
    public static void write(Path target, long size, Filler filler, List<FileSnapshot> inputs) throws IOException {
        try (Prepared prepared = prepare(target, size, filler, inputs)) {
            prepared.commit();
        }
    }

    /**
     * Fills and forces a temp file for {@code target} without renaming it yet, so that several files can
     * be made complete before the first is put in place. Closing a {@link Prepared} that was not
     * committed deletes its temp file.
     *
     * @param target the file to create or replace, checked by {@link OutputTarget#resolve}; none of the inputs
     * @param size the file's exact size in bytes, not negative
     * @param filler writes the content into the mapping
     * @param inputs the files the filler reads, as they were opened; empty if it reads none
     * @return the complete, forced temp file, to commit and then close
     * @throws IOException if the target is refused, the disk lacks the space, an input changed during the fill
     *         ({@link FileSnapshot.InputChangedException}), or sizing, mapping, filling or forcing fails; the
     *         temp file is then deleted
     */
    public static Prepared prepare(Path target, long size, Filler filler, List<FileSnapshot> inputs) throws IOException {
        Objects.requireNonNull(filler, "filler");
        return prepare(target, size, inputs, (channel, temp) -> {
            try (Arena arena = Arena.ofShared()) {
                MemorySegment file = channel.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
                pauseIfAskedAt("beforeFill");
                fill(() -> filler.fill(file), inputs);
                file.force();
            }
        });
    }

    /** What writes a file front to back, through a {@link StreamedFile}. */
    @FunctionalInterface
    public interface StreamFiller {
        /**
         * Stages and submits every byte of the file's body, then writes its head.
         *
         * @param file the file; valid during this call only
         * @throws IOException if the content cannot be produced; the write is then abandoned
         */
        void fill(StreamedFile file) throws IOException;
    }

    /**
     * Creates {@code target} with {@code size} bytes written by {@code filler} through a {@link StreamedFile},
     * with direct I/O where the file system takes it, all or nothing as {@link #write(Path, long, Filler, List)}.
     *
     * @param target the file to create or replace, checked by {@link OutputTarget#resolve}; none of the inputs
     * @param size the file's exact size in bytes, not negative
     * @param headLength the bytes at the start that the filler writes last, with {@link StreamedFile#writeHead}
     * @param maxStaged how many ranges the filler may stage at a time ({@link StreamedFile})
     * @param filler writes the content
     * @param inputs the files the filler reads, as they were opened; empty if it reads none
     * @throws IOException if the target is refused, the disk lacks the space, an input changed during the fill,
     *         or sizing, writing, forcing or renaming fails; the target is then left as it was
     */
    public static void writeStreamed(Path target, long size, long headLength, int maxStaged, StreamFiller filler,
                                     List<FileSnapshot> inputs) throws IOException {
        Objects.requireNonNull(filler, "filler");
        try (Prepared prepared = prepare(target, size, inputs, (channel, temp) -> {
            FileChannel direct = openDirect(temp);
            StreamedFile file = new StreamedFile(direct != null ? direct : channel, channel, size, headLength, maxStaged);
            try {
                pauseIfAskedAt("beforeFill");
                try {
                    fill(() -> filler.fill(file), inputs);
                } catch (UncheckedIOException e) { // a write of the disk thread failed, seen by the filler
                    throw e.getCause();
                }
                if (!file.complete()) {
                    throw new IllegalStateException("the file's head was never written");
                }
            } finally {
                file.stop();
                if (direct != null) {
                    direct.close();
                }
            }
            channel.force(true);
        })) {
            prepared.commit();
        }
    }

    /**
     * The temp file opened again for direct I/O, or null where the file system or platform refuses it (tmpfs,
     * say) or its alignment is not a divisor of {@link StreamedFile#BLOCK}: then writes go through the page cache.
     */
    private static FileChannel openDirect(Path temp) {
        try {
            long alignment = Files.getFileStore(temp).getBlockSize();
            if (alignment <= 0 || StreamedFile.BLOCK % alignment != 0) {
                return null;
            }
            return DIRECT == null ? null : FileChannel.open(temp, StandardOpenOption.WRITE, DIRECT);
        } catch (IOException | UnsupportedOperationException e) {
            return null;
        }
    }

    /**
     * The JDK's open option for direct I/O, {@code com.sun.nio.file.ExtendedOpenOption.DIRECT} (module
     * jdk.unsupported), looked up by name so that no build warns of an internal API; null where it is absent.
     */
    static final OpenOption DIRECT = directOption();

    private static OpenOption directOption() {
        try {
            for (Object option : Class.forName("com.sun.nio.file.ExtendedOpenOption").getEnumConstants()) {
                if (((Enum<?>) option).name().equals("DIRECT")) {
                    return (OpenOption) option;
                }
            }
        } catch (ClassNotFoundException | RuntimeException e) {
            // an older or a trimmed runtime: writes go through the page cache
        }
        return null;
    }

    /** What fills the temp file, opened as {@code channel} and sized; forces what it wrote to disk. */
    @FunctionalInterface
    private interface FillStep {
        void fill(FileChannel channel, Path temp) throws IOException;
    }

    private static Prepared prepare(Path target, long size, List<FileSnapshot> inputs, FillStep step)
            throws IOException {
        Path real = OutputTarget.resolve(target, inputs);
        Path directory = real.getParent();
        removeAbandonedPartials(directory, real.getFileName().toString());
        Path temp = directory.resolve("." + real.getFileName() + PARTIAL_MARK + ProcessHandle.current().pid() + "."
                + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt()));
        IN_PROGRESS.add(temp);
        FileChannel channel = null;
        try {
            channel = FileChannel.open(temp, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                    StandardOpenOption.WRITE);
            channel.tryLock();
            DiskSpace.reserve(channel, temp, size);
            if (size > 0 && channel.size() < size) {
                channel.write(ByteBuffer.wrap(new byte[1]), size - 1);
            }
            step.fill(channel, temp);
            FileSnapshot.checkAllUnchanged(inputs);
            return new Prepared(real, temp, channel);
        } catch (IOException | RuntimeException | Error e) {
            abandon(temp, channel);
            throw e;
        }
    }

    /** The part of a fill that reads the inputs. */
    @FunctionalInterface
    private interface Fill {
        void run() throws IOException;
    }

    private static void fill(Fill fill, List<FileSnapshot> inputs) throws IOException {
        try {
            fill.run();
        } catch (InternalError e) {
            throw FileSnapshot.mappedReadFailed(e, inputs);
        }
    }

    private static void abandon(Path temp, FileChannel channel) throws IOException {
        try {
            if (channel != null) {
                channel.close();
            }
        } finally {
            Files.deleteIfExists(temp);
            IN_PROGRESS.remove(temp);
        }
    }

    /** A complete temp file waiting to be renamed onto its target. */
    public static final class Prepared implements AutoCloseable {
        private final Path target;
        private final Path temp;
        private final FileChannel channel;
        private boolean committed;

        private Prepared(Path target, Path temp, FileChannel channel) {
            this.target = target;
            this.temp = temp;
            this.channel = channel;
        }

        /**
         * The real path the file is renamed to.
         *
         * @return the target as {@link OutputTarget#resolve} resolved it: absolute, through symbolic links
         */
        public Path target() {
            return target;
        }

        /**
         * Renames the temp file onto the target in one atomic step and syncs the folder.
         *
         * @throws IOException if the rename fails (the target is then as it was) or the temp file's channel
         *         cannot be closed after it
         */
        public void commit() throws IOException {
            pauseIfAskedAt("beforeRename");
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            committed = true;
            IN_PROGRESS.remove(temp);
            channel.close();
            pauseIfAskedAt("afterRename");
            forceDirectory(target.getParent());
        }

        /** Deletes the temp file unless it was committed. */
        @Override
        public void close() throws IOException {
            if (!committed) {
                abandon(temp, channel);
            }
        }
    }

    /**
     * Deletes temp files of earlier writes to this target whose writer is gone: those whose lock can be
     * taken. This JVM's own temp files are never opened here, since closing any descriptor of a file
     * drops every POSIX lock this process holds on it.
     */
    private static void removeAbandonedPartials(Path directory, String targetName) throws IOException {
        String prefix = "." + targetName + PARTIAL_MARK;
        try (DirectoryStream<Path> partials = Files.newDirectoryStream(directory,
                path -> path.getFileName().toString().startsWith(prefix))) {
            for (Path partial : partials) {
                if (!IN_PROGRESS.contains(partial) && Files.isRegularFile(partial)) {
                    deleteIfUnlocked(partial);
                }
            }
        }
    }

    private static void deleteIfUnlocked(Path partial) throws IOException {
        try (FileChannel channel = FileChannel.open(partial, StandardOpenOption.WRITE)) {
            FileLock lock = channel.tryLock();
            if (lock != null) {
                Files.deleteIfExists(partial);
            }
        } catch (OverlappingFileLockException e) {
            // Held in this JVM by a writer that started since the listing: alive.
        } catch (java.nio.file.NoSuchFileException e) {
            // Renamed or removed by its writer meanwhile.
        }
    }

    private static void pauseIfAskedAt(String point) {
        if (PAUSE_AT.equals(point)) {
            System.err.println("qnat: paused " + point);
            System.err.flush();
            try {
                int c;
                do {
                    c = System.in.read();
                } while (c != -1 && c != '\n');
            } catch (IOException e) {
                // No stdin to wait on: go on.
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
