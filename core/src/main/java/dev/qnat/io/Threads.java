package dev.qnat.io;

/** Waiting for the helper threads whose memory must outlive their last call. */
final class Threads {
    private Threads() {}

    /**
     * Waits until {@code thread} has ended, even when interrupted meanwhile (the interrupt is kept for the
     * caller): it may still be reading or writing memory that the caller frees next.
     *
     * @param thread the thread to wait for
     */
    static void joinUninterruptibly(Thread thread) {
        boolean interrupted = false;
        while (true) {
            try {
                thread.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
