package dev.qnat.cli;

import dev.qnat.format.QnatWriter;
import java.io.PrintWriter;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Progress of a long job in bytes of input: a progress bar (bytes, rate, time left) when standard
 * error is a terminal, a plain line every few seconds otherwise.
 */
final class Progress implements QnatWriter.Progress, AutoCloseable {
    private static final long LINE_INTERVAL_NANOS = 5_000_000_000L;
    private static final int STDERR = 2;
    private static final Optional<MethodHandle> ISATTY = isatty();

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
                .setStyle(ProgressBarStyle.ASCII).setUnit(" MB", 1 << 20).showSpeed().build() : null;
    }

    /**
     * Whether standard error, where the bar goes, is a terminal. System.console().isTerminal() answers
     * for standard input and output, and would draw the bar's escape codes into a redirected stderr.
     */
    static boolean onTerminal() {
        return isTerminal(STDERR);
    }

    /** libc's isatty(fd); false where it cannot be called (no such symbol, native access denied). */
    static boolean isTerminal(int fd) {
        if (ISATTY.isEmpty()) {
            return false;
        }
        try {
            return (int) ISATTY.get().invokeExact(fd) == 1;
        } catch (Throwable e) {
            return false;
        }
    }

    @SuppressWarnings("restricted") // calling libc is the point; ./qnat passes --enable-native-access
    private static Optional<MethodHandle> isatty() {
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("isatty")
                    .map(isatty -> linker.downcallHandle(isatty, FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT)));
        } catch (RuntimeException | LinkageError e) {
            return Optional.empty();
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
