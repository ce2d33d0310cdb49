package dev.qnat.cli;

import dev.qnat.format.QnatWriter;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import me.tongfei.progressbar.ConsoleProgressBarConsumer;
import me.tongfei.progressbar.InteractiveConsoleProgressBarConsumer;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarConsumer;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Progress of a long job in bytes of input: a progress bar (bytes, rate, time left) when standard
 * error is a terminal, a plain line every few seconds otherwise.
 */
final class Progress implements QnatWriter.Progress, AutoCloseable {
    private static final long LINE_INTERVAL_NANOS = 5_000_000_000L;
    private static final int STDERR = 2;
    private static final int DEFAULT_WIDTH = 79;
    private static final int MIN_WIDTH = 20;

    private final ProgressBar bar;
    private final PrintWriter lines;
    private final String task;
    private final long total;
    private final AtomicLong done = new AtomicLong();
    private final long started = System.nanoTime();
    private volatile long lastLine = System.nanoTime();

    Progress(String task, long totalBytes, PrintWriter err, boolean terminal) {
        this.task = task;
        this.total = totalBytes;
        this.lines = terminal ? null : err;
        this.bar = terminal ? new ProgressBarBuilder().setTaskName(task).setInitialMax(Math.max(1, totalBytes))
                .setStyle(ProgressBarStyle.ASCII).setUnit(" MB", 1 << 20).showSpeed().setConsumer(console()).build() : null;
    }

    /**
     * Where the bar is drawn: standard error, as wide as COLUMNS says where the shell exports it, else 79
     * columns. Left to itself the library asks JLine for the terminal's width and abilities, which runs
     * stty and friends as processes: 0.2 s of a 1.5 s small-model run (measured).
     */
    private static ProgressBarConsumer console() {
        int width = DEFAULT_WIDTH;
        try {
            width = Math.max(MIN_WIDTH, Integer.parseInt(System.getenv().getOrDefault("COLUMNS", "")) - 1);
        } catch (NumberFormatException e) {
            // not exported, as usual: the default
        }
        String term = System.getenv().getOrDefault("TERM", "dumb");
        return term.equals("dumb") ? new ConsoleProgressBarConsumer(System.err, width)
                : new InteractiveConsoleProgressBarConsumer(System.err, width);
    }

    /**
     * Whether standard error, where the bar goes, is a terminal. System.console().isTerminal() answers
     * for standard input and output, and would draw the bar's escape codes into a redirected stderr.
     */
    static boolean onTerminal() {
        return isTerminal(STDERR);
    }

    /**
     * Whether a file descriptor is a terminal: on Linux by the device /proc/self/fd names, elsewhere by
     * libc's isatty (false where it cannot be called). Linux needs no native call, whose first use in a
     * process sets up the linker, 0.05 to 0.1 s of a small model's run (measured).
     */
    static boolean isTerminal(int fd) {
        Path link = Path.of("/proc/self/fd", Integer.toString(fd));
        if (Files.isDirectory(link.getParent())) {
            return namesTerminal(link);
        }
        return isatty(fd);
    }

    /** Whether the /proc/self/fd entry {@code link} leads to a terminal device; false where there is none. */
    static boolean namesTerminal(Path link) {
        try {
            String device = Files.readSymbolicLink(link).toString();
            return device.startsWith("/dev/pts/") || device.startsWith("/dev/tty") || device.equals("/dev/ptmx")
                    || device.equals("/dev/console");
        } catch (IOException | UnsupportedOperationException e) {
            return false; // no such descriptor
        }
    }

    /** libc's isatty(fd); false where it cannot be called (no such symbol, native access denied). */
    static boolean isatty(int fd) {
        Optional<MethodHandle> isatty = Native.ISATTY;
        if (isatty.isEmpty()) {
            return false;
        }
        try {
            return (int) isatty.get().invokeExact(fd) == 1;
        } catch (Throwable e) {
            return false;
        }
    }

    /** Looked up on first use, which Linux never makes. */
    private static final class Native {
        static final Optional<MethodHandle> ISATTY = lookup();

        @SuppressWarnings("restricted") // calling libc is the point; ./qnat passes --enable-native-access
        private static Optional<MethodHandle> lookup() {
            try {
                Linker linker = Linker.nativeLinker();
                return linker.defaultLookup().find("isatty")
                        .map(isatty -> linker.downcallHandle(isatty, FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT)));
            } catch (RuntimeException | LinkageError e) {
                return Optional.empty();
            }
        }
    }

    @Override
    public void advance(long inputBytes) {
        long now = done.addAndGet(inputBytes);
        if (bar != null) {
            bar.stepTo(now);
        } else if (System.nanoTime() - lastLine > LINE_INTERVAL_NANOS) {
            synchronized (this) {
                if (System.nanoTime() - lastLine > LINE_INTERVAL_NANOS) {
                    lastLine = System.nanoTime();
                    double seconds = (lastLine - started) / 1e9;
                    lines.printf("%s: %.0f%% (%s of %s, %.2f GB/s)%n", task, 100.0 * now / Math.max(1, total),
                            Units.bytes(now), Units.bytes(total), now / seconds / 1e9);
                    lines.flush();
                }
            }
        }
    }

    @Override
    public void close() {
        if (bar != null) {
            bar.close();
        }
    }
}
