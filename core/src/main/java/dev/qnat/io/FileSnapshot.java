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
 */
public record FileSnapshot(Path file, long size, FileTime modified, Object key) {
    public FileSnapshot {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(modified, "modified");
    }

    /**
     * Takes a snapshot of a regular file (through symbolic links), before it is opened, so that a FIFO or
     * a device, which would block or never end, is refused without being opened.
     *
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

    /** Checks every snapshot; the first changed file is reported. */
    public static void checkAllUnchanged(Collection<FileSnapshot> files) throws IOException {
        for (FileSnapshot file : files) {
            file.checkUnchanged();
        }
    }

    /**
     * The I/O error for a fault on a mapped page (the JVM's {@code InternalError} when a mapped file
     * shrank under a read): the changed input named, when one of {@code inputs} did change.
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
