package dev.qnat.concurrent;

import java.io.InterruptedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A fixed number of daemon threads for the writers' parallel work. {@link #runAll} runs a list of tasks
 * to the end, or to the first failure: tasks not yet started are then skipped, those running are waited
 * for, and the failure is rethrown as it was (a NaN in a tensor, say), not wrapped.
 */
public final class Workers implements AutoCloseable {
    private final ExecutorService pool;

    /**
     * Starts {@code threads} threads named {@code name}.
     *
     * @param name the name of every thread, as thread dumps show it
     * @param threads the number of threads, at least 1; tasks beyond it wait for a free one
     * @throws IllegalArgumentException {@code threads} is below 1
     */
    public Workers(String name, int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        pool = Executors.newFixedThreadPool(threads, runnable -> {
            Thread thread = new Thread(runnable, name);
            thread.setDaemon(true);
            return thread;
        });
    }

    /**
     * Runs every task and waits for them; the first task to fail stops the rest and its exception is thrown.
     *
     * @param tasks the tasks, started in list order, as many at a time as there are threads; may be empty
     * @throws InterruptedIOException the calling thread was interrupted while waiting; the tasks are cancelled
     * @throws RuntimeException the exception of the first failed task in list order, as it was thrown
     */
    public void runAll(List<? extends Runnable> tasks) throws InterruptedIOException {
        AtomicBoolean failed = new AtomicBoolean();
        List<Future<?>> futures = new ArrayList<>();
        for (Runnable task : tasks) {
            futures.add(pool.submit(() -> {
                if (!failed.get()) {
                    try {
                        task.run();
                    } catch (RuntimeException | Error e) {
                        failed.set(true);
                        throw e;
                    }
                }
            }));
        }
        for (Future<?> future : futures) {
            try {
                future.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                futures.forEach(f -> f.cancel(true));
                throw new InterruptedIOException("interrupted while writing");
            } catch (ExecutionException e) {
                // The tasks not started yet see the flag and do nothing; those running finish first, so that
                // nothing runs on when the caller cleans up (frees scratch memory, deletes a temp file).
                awaitQuietly(futures);
                if (e.getCause() instanceof Error error) {
                    throw error;
                }
                throw (RuntimeException) e.getCause(); // a Runnable throws nothing else
            }
        }
    }

    private static void awaitQuietly(List<Future<?>> futures) throws InterruptedIOException {
        for (Future<?> future : futures) {
            try {
                future.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while writing");
            } catch (ExecutionException e) {
                // a later failure; the first one is reported
            }
        }
    }

    /** Stops the threads, interrupting any task still running; tasks cannot be run after this. */
    @Override
    public void close() {
        pool.shutdownNow();
    }
}
