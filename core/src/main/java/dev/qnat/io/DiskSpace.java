package dev.qnat.io;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Reserves a file's disk blocks up front. A mapped file that is only sized is sparse: when the disk
 * fills up while its pages are written, the JVM gets a bus error instead of an exception. Reserved
 * first, a full disk is an IOException before any work is done. Small files get their blocks by writing
 * zeros; larger ones by POSIX {@code posix_fallocate}, where the C library has it. Where that call is
 * missing (or native access is denied), a larger file is left sparse.
 */
@SuppressWarnings("restricted") // calling libc is the point; ./qnat passes --enable-native-access
final class DiskSpace {
    private static final int O_WRONLY = 1;
    private static final int ENOSPC = 28;
    /**
     * Files up to this size are reserved by writing zeros: at most about 30 ms, where a process's first
     * native call sets up the linker first, 0.05 to 0.1 s of a small model's run (measured).
     */
    private static final long ZERO_FILL_BYTES = 64L << 20;
    private static final int ZERO_CHUNK = 1 << 20;

    private record Functions(MethodHandle open, MethodHandle fallocate, MethodHandle close) {}

    /** Looked up on first use: small files never need the linker. */
    private static final class Native {
        static final Optional<Functions> FUNCTIONS = lookup();
    }

    private DiskSpace() {}

    private static Optional<Functions> lookup() {
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup libc = linker.defaultLookup();
            return libc.find("posix_fallocate").flatMap(fallocate -> libc.find("open").flatMap(open ->
                    libc.find("close").map(close -> new Functions(
                            linker.downcallHandle(open, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT)),
                            linker.downcallHandle(fallocate, FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG)),
                            linker.downcallHandle(close, FunctionDescriptor.of(JAVA_INT, JAVA_INT))))));
        } catch (RuntimeException | LinkageError e) {
            return Optional.empty();
        }
    }

    /**
     * Reserves {@code size} bytes for the empty file {@code path}, open as {@code channel}; IOException when
     * the disk lacks them. Files up to {@code ZERO_FILL_BYTES} are written full of zeros.
     */
    static void reserve(FileChannel channel, Path path, long size) throws IOException {
        reserve(channel, path, size, ZERO_FILL_BYTES);
    }

    /** {@link #reserve(FileChannel, Path, long)}, writing zeros into files up to {@code zeroFillBytes}. */
    static void reserve(FileChannel channel, Path path, long size, long zeroFillBytes) throws IOException {
        if (size == 0) {
            return;
        }
        if (size <= zeroFillBytes) {
            writeZeros(channel, path, size);
            return;
        }
        if (Native.FUNCTIONS.isEmpty()) {
            return;
        }
        Functions f = Native.FUNCTIONS.get();
        int result;
        try (Arena arena = Arena.ofConfined()) {
            int fd = (int) f.open().invokeExact(arena.allocateFrom(path.toAbsolutePath().toString()), O_WRONLY);
            if (fd < 0) {
                return; // the channel that maps the file reports real problems with it
            }
            try {
                result = (int) f.fallocate().invokeExact(fd, 0L, size);
            } finally {
                int ignored = (int) f.close().invokeExact(fd);
            }
        } catch (IOException | RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
        if (result == ENOSPC) {
            throw notEnoughSpace(path, size, null);
        }
        // Other errors (e.g. a file system without fallocate) leave the file sparse, as before.
    }

    private static void writeZeros(FileChannel channel, Path path, long size) throws IOException {
        ByteBuffer zeros = ByteBuffer.allocateDirect((int) Math.min(size, ZERO_CHUNK));
        long at = 0;
        try {
            while (at < size) {
                zeros.clear().limit((int) Math.min(zeros.capacity(), size - at));
                while (zeros.hasRemaining()) {
                    at += channel.write(zeros, at);
                }
            }
        } catch (IOException e) {
            // The error's text is the C library's, in the user's language: judge by the space left.
            if (Files.getFileStore(path).getUsableSpace() < size - at) {
                throw notEnoughSpace(path, size, e);
            }
            throw new IOException(path + ": cannot reserve " + size + " bytes: " + e.getMessage(), e);
        }
    }

    private static IOException notEnoughSpace(Path path, long size, IOException cause) {
        return new IOException(path + ": not enough disk space for " + size + " bytes", cause);
    }
}
