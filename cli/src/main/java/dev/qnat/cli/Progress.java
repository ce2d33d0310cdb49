package dev.qnat.cli;

import dev.qnat.format.QnatWriter;
import java.io.PrintWriter;
import java.util.concurrent.atomic.AtomicLong;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * Progress of a long job in bytes of input: a progress bar (bytes, rate, time left) on a terminal,
 * a plain line every few seconds otherwise.
 */
final class Progress implements QnatWriter.Progress, AutoCloseable {
    private static final long LINE_INTERVAL_NANOS = 5_000_000_000L;

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

    static boolean onTerminal() {
        return System.console() != null && System.console().isTerminal();
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
