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
import java.nio.file.Path;
import java.util.Optional;

/**
 * Reserves a file's disk blocks up front with POSIX {@code posix_fallocate}, where the C library has
 * it. A mapped file that is only sized is sparse: when the disk fills up while its pages are written,
 * the JVM gets a bus error instead of an exception. Reserved first, a full disk is an IOException
 * before any work is done. Where the call is missing (or native access is denied), nothing is reserved.
 */
@SuppressWarnings("restricted") // calling libc is the point; ./qnat passes --enable-native-access
final class DiskSpace {
    private static final int O_WRONLY = 1;
    private static final int ENOSPC = 28;
    private static final Optional<Functions> FUNCTIONS = lookup();

    private record Functions(MethodHandle open, MethodHandle fallocate, MethodHandle close) {}

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

    /** Reserves {@code size} bytes for the existing file {@code path}; IOException when the disk lacks them. */
    static void reserve(Path path, long size) throws IOException {
        if (FUNCTIONS.isEmpty() || size == 0) {
            return;
        }
        Functions f = FUNCTIONS.get();
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
            throw new IOException(path + ": not enough disk space for " + size + " bytes");
        }
        // Other errors (e.g. a file system without fallocate) leave the file sparse, as before.
    }
}
