package dev.qnat.io;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collection;

/**
 * The one rule for where a writer may write, checked before any work: the output is a file name in an
 * existing, writable folder; it is not a folder, a device, a FIFO or a socket; and it is none of the
 * inputs, however it is reached (the same path, a symbolic link, a hard link, {@code ..}). Both sides
 * are resolved to real files before they are compared. An output given through a symbolic link to a
 * file is written to that file, as a program writing through the link would.
 */
public final class OutputTarget {
    private OutputTarget() {}

    /**
     * Returns the real path to write {@code output} to.
     *
     * @param output the file to write, existing or not; relative paths count from the working folder
     * @param inputs the files the write reads (every shard and index of a checkpoint)
     * @return the absolute real path of the file to write: its folder resolved and, for an existing file,
     *         symbolic links to it followed
     * @throws OutputRefusedException the output is not a file qnat may replace, or it is an input
     * @throws NoSuchFileException its folder does not exist
     * @throws AccessDeniedException its folder is not writable
     */
    public static Path resolve(Path output, Collection<FileSnapshot> inputs) throws IOException {
        Path name = output.getFileName();
        if (name == null || name.toString().isEmpty() || name.toString().equals(".") || name.toString().equals("..")) {
            throw new OutputRefusedException(output, "is not a file name");
        }
        Path real;
        if (Files.exists(output)) {
            if (Files.isDirectory(output)) {
                throw new OutputRefusedException(output, "is a folder; give the name of the file to write");
            }
            if (!Files.isRegularFile(output)) {
                throw new OutputRefusedException(output, "is not a regular file (a device, a FIFO or a socket); "
                        + "qnat replaces regular files only");
            }
            real = output.toRealPath();
        } else if (Files.isSymbolicLink(output)) {
            throw new OutputRefusedException(output, "is a symbolic link to a file that does not exist");
        } else {
            Path folder = output.toAbsolutePath().getParent();
            if (!Files.isDirectory(folder)) {
                throw new NoSuchFileException(folder.toString(), null, "the output folder does not exist");
            }
            real = folder.toRealPath().resolve(name.toString());
        }
        if (!Files.isWritable(real.getParent())) {
            throw new AccessDeniedException(real.getParent().toString(), null, "the output folder is not writable");
        }
        for (FileSnapshot input : inputs) {
            if (real.equals(input.file()) || Files.exists(real, LinkOption.NOFOLLOW_LINKS)
                    && Files.isSameFile(real, input.file())) {
                throw new OutputRefusedException(output, "is the input " + input.file()
                        + (real.equals(input.file()) ? "" : " (linked)") + "; write the output to another file");
            }
        }
        return real;
    }

    /** A write refused before it began: its output is not a file qnat may replace. */
    public static final class OutputRefusedException extends FileSystemException {
        private static final long serialVersionUID = 1L;

        /**
         * The write to {@code output} is refused for {@code reason}.
         *
         * @param output the output as given, named in the message
         * @param reason why it is refused, e.g. "is a folder"
         */
        public OutputRefusedException(Path output, String reason) {
            super(output.toString(), null, reason);
        }
    }
}
