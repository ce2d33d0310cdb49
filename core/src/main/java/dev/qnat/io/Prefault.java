package dev.qnat.io;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.List;
import java.util.Optional;

/**
 * Maps the pages of part of a file mapping in one system call, before a kernel streams through it.
 * Left to itself, the first touch of each page (4 KiB; 64 KiB with the kernel's fault-around on reads)
 * is a page fault, and at a few GB/s those faults cost as much as the NF4 work. Linux 5.14+ populates
 * a whole range at once with {@code madvise(MADV_POPULATE_READ / MADV_POPULATE_WRITE)}; elsewhere, or
 * for heap memory, this does nothing and the pages fault in as before. Done in the thread that then
 * reads the pages, this costs about what the faults cost (measured); done ahead on a thread of its own,
 * it takes that work off the workers (BENCHMARKS.md).
 */
@SuppressWarnings("restricted") // calling libc is the point; ./qnat passes --enable-native-access
public final class Prefault {
    private static final int MADV_POPULATE_READ = 22;
    private static final int MADV_POPULATE_WRITE = 23;
    /** What the background thread populates per call, so that closing it never waits long. */
    private static final long CHUNK = 32L << 20;
    /**
     * Ranges smaller than this in all are left to fault in: their faults cost less than a process's first
     * native call, which sets up the linker first (0.05 to 0.1 s, measured).
     */
    static final long MIN_BYTES = 256L << 20;

    /** Looked up on first use: small jobs never need the linker. */
    private static final class Native {
        static final Optional<Madvise> MADVISE = lookup();
    }

    /** madvise, and the page size its start address must be a multiple of (4 KiB, or 16/64 KiB on some ARM). */
    private record Madvise(MethodHandle call, long pageSize) {}

    private Prefault() {}

    private static Optional<Madvise> lookup() {
        if (!System.getProperty("os.name", "").equals("Linux")) {
            return Optional.empty(); // the advice numbers above are Linux's
        }
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup libc = linker.defaultLookup();
            Optional<MemorySegment> madvise = libc.find("madvise");
            Optional<MemorySegment> getpagesize = libc.find("getpagesize");
            if (madvise.isEmpty() || getpagesize.isEmpty()) {
                return Optional.empty();
            }
            int pageSize = (int) linker.downcallHandle(getpagesize.get(), FunctionDescriptor.of(JAVA_INT)).invokeExact();
            return Optional.of(new Madvise(linker.downcallHandle(madvise.get(),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT)), pageSize));
        } catch (Throwable e) { // no native access, no such call: the pages fault in as before
            return Optional.empty();
        }
    }

    /**
     * A part of a file mapping to populate, for reading or for writing.
     *
     * @param segment the bytes to populate; a heap segment, or an empty one, is skipped
     * @param forWriting true to populate the pages for writing ({@code MADV_POPULATE_WRITE}), false for reading
     */
    public record Range(MemorySegment segment, boolean forWriting) {}

    /** Populates ranges, in order, on a thread of its own; closing it stops that and waits for it. */
    public static final class Ahead implements AutoCloseable {
        private final Thread thread;
        private volatile boolean stop;

        private Ahead(List<Range> ranges) {
            if (ranges.isEmpty()) {
                thread = null;
                return;
            }
            thread = new Thread(() -> {
                for (Range range : ranges) {
                    for (long at = 0; at < range.segment().byteSize() && !stop; at += CHUNK) {
                        MemorySegment chunk = range.segment().asSlice(at, Math.min(CHUNK, range.segment().byteSize() - at));
                        populate(chunk, range.forWriting() ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
                    }
                }
            }, "qnat-prefault");
            thread.setDaemon(true);
            thread.start();
        }

        @Override
        public void close() {
            if (thread == null) {
                return;
            }
            stop = true;
            Threads.joinUninterruptibly(thread); // the mapping must outlive this thread's last call
        }
    }

    /**
     * Starts populating {@code ranges} in order on a thread of its own, ahead of workers that go through
     * them in about that order; ranges of less than 256 MiB in all are left to fault in. Close the result
     * before the mappings are closed.
     *
     * @param ranges the ranges, populated in list order (the list is copied)
     * @return the running populator; closing it stops it after its current chunk of 32 MiB and waits for it
     */
    public static Ahead ahead(List<Range> ranges) {
        return ahead(ranges, MIN_BYTES);
    }

    /** {@link #ahead(List)}, populating only where the ranges hold at least {@code minBytes} in all. */
    static Ahead ahead(List<Range> ranges, long minBytes) {
        long bytes = 0;
        for (Range range : ranges) {
            bytes += range.segment().byteSize();
        }
        return new Ahead(bytes < minBytes ? List.of() : List.copyOf(ranges));
    }

    private static void populate(MemorySegment range, int advice) {
        if (!range.isNative() || range.byteSize() == 0 || Native.MADVISE.isEmpty()) {
            return;
        }
        Madvise madvise = Native.MADVISE.get();
        long start = range.address() & -madvise.pageSize();
        long length = range.address() + range.byteSize() - start;
        try {
            // The result is ignored: an old kernel (EINVAL) or a page it cannot map now (EFAULT, ENOMEM)
            // leaves those pages to fault in as usual, where real errors surface as they always did.
            int ignored = (int) madvise.call().invokeExact(MemorySegment.ofAddress(start), length, advice);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
    }
}
