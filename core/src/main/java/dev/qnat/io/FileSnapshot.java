package dev.qnat.io;

import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.Collection;
import java.util.Objects;

/**
 * An input file as it was when it was opened: its real path, size, modification time and identity.
 * A file read through a mapping must not shrink or be rewritten while it is read; comparing a snapshot
 * taken before the work with the file after it tells whether it was. A file replaced by another under
 * the same name (an atomic rename, say) is no change: the mapping still reads the old one, whole.
 *
 * @param file the file's real path (symbolic links resolved), as it is compared and named in errors
 * @param size its size in bytes when the snapshot was taken
 * @param modified its last modification time then
 * @param key its identity then ({@link BasicFileAttributes#fileKey()}: device and inode on Unix), or null where
 *        the file system has none; a file of another key under the same path is a replacement, not a change
 */
public record FileSnapshot(Path file, long size, FileTime modified, Object key) {
    /**
     * A snapshot of the given attributes; {@link #of} takes one of a file.
     *
     * @param file the file's real path
     * @param size its size in bytes
     * @param modified its last modification time
     * @param key its identity ({@link BasicFileAttributes#fileKey()}: device and inode on Unix), or null where
     *        the file system has none
     * @throws NullPointerException if {@code file} or {@code modified} is null
     */
    public FileSnapshot {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(modified, "modified");
    }

    /**
     * Takes a snapshot of a regular file (through symbolic links), before it is opened, so that a FIFO or
     * a device, which would block or never end, is refused without being opened.
     *
     * @param path the file; symbolic links are followed
     * @return the file's real path, size, modification time and identity now
     * @throws NoSuchFileException {@code path} does not exist
     * @throws IOException its attributes or real path cannot be read
     * @throws NotRegularFileException {@code path} is a folder, a FIFO, a device or a socket
     */
    public static FileSnapshot of(Path path) throws IOException {
        BasicFileAttributes attributes = Files.readAttributes(path, BasicFileAttributes.class);
        if (!attributes.isRegularFile()) {
            throw new NotRegularFileException(path, attributes.isDirectory() ? "a folder, not a file"
                    : "not a regular file (a FIFO, a device or a socket)");
        }
        return new FileSnapshot(path.toRealPath(), attributes.size(), attributes.lastModifiedTime(), attributes.fileKey());
    }

    /**
     * Checks that the file has the size and modification time it had when the snapshot was taken.
     *
     * @throws InputChangedException it was truncated, extended or written to since
     */
    public void checkUnchanged() throws IOException {
        BasicFileAttributes now;
        try {
            now = Files.readAttributes(file, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        } catch (NoSuchFileException e) {
            return; // deleted or renamed away: the mapping keeps the old file whole
        }
        if (key != null && !key.equals(now.fileKey())) {
            return; // another file under the same name; the mapping reads the one that was opened
        }
        if (now.size() != size) {
            throw new InputChangedException(file, "changed size from " + size + " to " + now.size()
                    + " bytes while it was being read");
        }
        if (!now.lastModifiedTime().equals(modified)) {
            throw new InputChangedException(file, "was written to while it was being read (modified " + modified
                    + ", now " + now.lastModifiedTime() + ")");
        }
    }

    /**
     * Checks every snapshot; the first changed file is reported.
     *
     * @param files the snapshots to check, in order; empty checks nothing
     * @throws InputChangedException a file was truncated, extended or written to since its snapshot
     * @throws IOException a file's attributes cannot be read
     */
    public static void checkAllUnchanged(Collection<FileSnapshot> files) throws IOException {
        for (FileSnapshot file : files) {
            file.checkUnchanged();
        }
    }

    /**
     * The I/O error for a fault on a mapped page (the JVM's {@code InternalError} when a mapped file
     * shrank under a read): the changed input named, when one of {@code inputs} did change.
     *
     * @param fault the JVM's error for the fault, kept as the cause
     * @param inputs the files that were read through mappings
     * @return the first changed input's exception (an {@link InputChangedException}, or the error met checking
     *         it), else a plain IOException saying a mapped file was truncated; not thrown, for the caller to throw
     */
    public static IOException mappedReadFailed(InternalError fault, Collection<FileSnapshot> inputs) {
        try {
            checkAllUnchanged(inputs);
        } catch (IOException changed) {
            changed.initCause(fault);
            return changed;
        }
        return new IOException("a mapped file was truncated while it was being read (" + fault.getMessage() + ")", fault);
    }

    /** An input that is a folder, a FIFO, a device or a socket. */
    public static final class NotRegularFileException extends FileSystemException {
        private static final long serialVersionUID = 1L;

        NotRegularFileException(Path file, String reason) {
            super(file.toString(), null, reason);
        }
    }

    /** An input file that was truncated or written to while it was read. */
    public static final class InputChangedException extends FileSystemException {
        private static final long serialVersionUID = 1L;

        InputChangedException(Path file, String reason) {
            super(file.toString(), null, reason);
        }
    }
}
