package dev.qnat.io;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.TreeMap;

/**
 * A file written front to back with positional writes, through direct I/O (O_DIRECT) where the file
 * system takes it. Callers stage ranges of the file's body in memory, from any thread and in any order,
 * and submit them; each is written, by a thread of its own, once every byte before it has been. The
 * head, {@code [0, headLength)}, comes last ({@link #writeHead}): a file's header often depends on
 * everything after it.
 *
 * <p>Why not a mapping: each page of a mapped output is a new page-cache page, which the kernel zeroes
 * before the first write, and on a virtual machine whose host takes freed memory back, a new page costs
 * more still. Writing 1 GiB through a mapping took 0.85 to 3.6 s and 3 s of CPU on the 2-core AVX-512
 * Xeon; direct writes from a few reused buffers, 0.6 s and 0.05 s of CPU (BENCHMARKS.md).
 *
 * <p>Direct writes go in whole blocks ({@link #BLOCK}) from block-aligned memory: a range's first
 * partial block is completed with the bytes carried over from the range before it, and its last partial
 * block is carried to the next; the file's last block is padded with zeros and the file cut back to its
 * size. Staged ranges hold buffers that are reused once written. Two limits keep them few: at most
 * {@code maxStaged} ranges wait for the disk, and at most {@code maxStaged} more are staged and not yet
 * handed to it, besides the one that starts where the written part ends, which never waits on that
 * second limit: it waits on the disk alone, which drains by itself, while waiting for other ranges to
 * be submitted could wait for ever on the very range that waits.
 */
public final class StreamedFile {
    /** The unit of direct writes: their file offsets, lengths and memory addresses are multiples of it. */
    public static final int BLOCK = 4096;
    /** The most bytes one positional write hands to the kernel. */
    private static final int MAX_WRITE = 64 << 20;
    /** Buffers are allocated in multiples of this, so that ranges of similar sizes reuse them. */
    private static final long BUFFER_GRAIN = 1 << 20;

    private final FileChannel channel;
    private final FileChannel headChannel;
    private final long size;
    private final long headLength;
    private final int maxStaged;
    private final Thread disk;
    private final ArrayDeque<Runnable> diskQueue = new ArrayDeque<>();

    // Guarded by this.
    private long next;
    private final TreeMap<Long, Range> submitted = new TreeMap<>();
    private final List<Buffer> free = new ArrayList<>();
    private final List<Arena> arenas = new ArrayList<>();
    private final MemorySegment carry;
    private int staged;
    private int writesPending;
    private IOException failure;
    private Throwable abandonedBy;
    private boolean headWritten;
    /** Read by the thread that writes without this lock, which it must not take while it holds the queue's. */
    private volatile boolean stopped;

    /** A range of the file staged in memory; its bytes are {@link #bytes()} until it is submitted. */
    public static final class Range {
        private final long from;
        private final long to;
        private final Buffer buffer;

        private Range(long from, long to, Buffer buffer) {
            this.from = from;
            this.to = to;
            this.buffer = buffer;
        }

        /**
         * The range's bytes, to fill entirely before {@link #submit}: their content is not defined before.
         *
         * @return the {@code to - from} bytes of the range
         */
        public MemorySegment bytes() {
            return buffer.memory.asSlice(from % BLOCK, to - from);
        }
    }

    private record Buffer(Arena arena, MemorySegment memory) {}

    /**
     * Writes through {@code channel}, which may be opened for direct I/O, and the head through
     * {@code headChannel}, which must not be.
     *
     * @param channel where the body is written; with direct I/O, a channel whose alignment is a divisor of
     *        {@link #BLOCK}
     * @param headChannel the same file opened without direct I/O (the head is not block-sized); may be
     *        {@code channel} when that is not direct
     * @param size the file's size in bytes
     * @param headLength the bytes at the start that {@link #writeHead} writes, at most {@code size}
     * @param maxStaged how many ranges may wait for the disk, and how many others be staged, at a time,
     *        besides the one that starts where the written part ends; at least 1
     */
    public StreamedFile(FileChannel channel, FileChannel headChannel, long size, long headLength, int maxStaged) {
        this.channel = Objects.requireNonNull(channel, "channel");
        this.headChannel = Objects.requireNonNull(headChannel, "headChannel");
        if (headLength < 0 || headLength > size || maxStaged < 1) {
            throw new IllegalArgumentException("head " + headLength + " of a file of " + size + " bytes, "
                    + maxStaged + " staged ranges");
        }
        this.size = size;
        this.headLength = headLength;
        this.maxStaged = maxStaged;
        this.next = headLength;
        this.carry = allocate(BLOCK); // zeros: what the body's first block holds of the head
        disk = new Thread(this::runDiskQueue, "qnat-disk");
        disk.setDaemon(true);
        disk.start();
    }

    /**
     * Stages the bytes {@code [from, to)} of the body; waits while {@code maxStaged} ranges wait for the
     * disk, or while {@code maxStaged} others are staged and not handed to it, unless this range starts
     * where the written part ends.
     *
     * @param from the first byte, at least the head's length
     * @param to the end, at most the file's size, above {@code from}
     * @return the staged range, to fill and submit
     * @throws UncheckedIOException a write failed, or the file was abandoned ({@link #stop}) or the thread
     *         interrupted while waiting
     */
    public Range stage(long from, long to) {
        if (from < headLength || to > size || from >= to) {
            throw new IllegalArgumentException("range [" + from + ", " + to + ") of a body [" + headLength + ", "
                    + size + ")");
        }
        long capacity = roundUp(from % BLOCK + (to - from), BUFFER_GRAIN);
        Buffer buffer;
        synchronized (this) {
            while (!stopped && failure == null
                    && (writesPending >= maxStaged || staged - writesPending >= maxStaged && from != next)) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new UncheckedIOException(new InterruptedIOException("interrupted while writing"));
                }
            }
            throwIfFailed();
            staged++;
            buffer = takeFree(capacity);
            if (buffer == null) {
                Arena arena = Arena.ofShared();
                arenas.add(arena);
                buffer = new Buffer(arena, arena.allocate(capacity, BLOCK));
            }
        }
        return new Range(from, to, buffer);
    }

    private MemorySegment allocate(long bytes) {
        Arena arena = Arena.ofShared();
        arenas.add(arena);
        return arena.allocate(bytes, BLOCK);
    }

    /** The smallest free buffer of at least {@code capacity} bytes; else frees the largest free one. */
    private Buffer takeFree(long capacity) {
        Buffer best = null;
        Buffer largest = null;
        for (Buffer buffer : free) {
            long bytes = buffer.memory.byteSize();
            if (bytes >= capacity && (best == null || bytes < best.memory.byteSize())) {
                best = buffer;
            }
            if (largest == null || bytes > largest.memory.byteSize()) {
                largest = buffer;
            }
        }
        if (best != null) {
            free.remove(best);
        } else if (largest != null) {
            free.remove(largest); // too small: make room for the new one rather than keep both
            arenas.remove(largest.arena);
            largest.arena.close();
        }
        return best;
    }

    /**
     * Hands a filled range over to be written once every byte before it is.
     *
     * @param range a range this file staged, filled, not submitted before
     * @throws IllegalStateException the range overlaps one submitted before
     * @throws UncheckedIOException a write failed, or the file was abandoned
     */
    public synchronized void submit(Range range) {
        throwIfFailed();
        if (range.from < next || submitted.containsKey(range.from)) {
            throw new IllegalStateException("range [" + range.from + ", " + range.to + ") submitted twice");
        }
        submitted.put(range.from, range);
        Range first;
        while ((first = submitted.get(next)) != null) {
            submitted.remove(next);
            writeInOrder(first);
        }
    }

    /**
     * The range that starts where the written part ends: completes its first block from the carry, keeps
     * its last partial block as the next carry, and queues its whole blocks.
     */
    private void writeInOrder(Range range) {
        MemorySegment memory = range.buffer.memory;
        long base = range.from - range.from % BLOCK;
        int lead = (int) (range.from - base);
        MemorySegment.copy(carry, 0, memory, 0, lead);
        long end;
        if (range.to == size) {
            end = roundUp(size, BLOCK);
            memory.asSlice(range.to - base, end - range.to).fill((byte) 0);
        } else {
            end = range.to - range.to % BLOCK;
            MemorySegment.copy(memory, end - base, carry, 0, range.to - end);
        }
        next = range.to;
        notifyAll();
        if (end <= base) {
            release(range.buffer);
            return;
        }
        writesPending++;
        enqueue(() -> {
            IOException error = null;
            try {
                writeFully(channel, memory.asSlice(0, end - base), base);
            } catch (IOException e) {
                error = e;
            } catch (RuntimeException | Error e) { // a channel not open for writing, say: never a silent stop
                error = new IOException("writing bytes " + base + " to " + end + " failed: " + e, e);
            }
            synchronized (this) {
                writesPending--;
                if (error != null && failure == null) {
                    failure = error;
                }
                release(range.buffer);
            }
        });
    }

    private void release(Buffer buffer) {
        staged--;
        free.add(buffer);
        notifyAll();
    }

    /**
     * Writes the head, {@code [0, headLength)}, once every byte of the body has been submitted; it may
     * share a block with the body, so it goes through the channel without direct I/O, after every body
     * write has ended.
     *
     * @param head the head's bytes, exactly {@code headLength} of them
     * @throws IOException a write failed
     * @throws IllegalStateException part of the body was never submitted, or the head was written before
     */
    public void writeHead(MemorySegment head) throws IOException {
        if (head.byteSize() != headLength) {
            throw new IllegalArgumentException("a head of " + head.byteSize() + " bytes, not " + headLength);
        }
        synchronized (this) {
            if (next != size || !submitted.isEmpty()) {
                throw new IllegalStateException("bytes from " + next + " of " + size + " were never submitted");
            }
            if (headWritten) {
                throw new IllegalStateException("the head was written before");
            }
            while (writesPending > 0 && failure == null) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new InterruptedIOException("interrupted while writing");
                }
            }
            if (failure != null) {
                throw failure;
            }
            headWritten = true;
        }
        if (channel.size() > size) {
            channel.truncate(size); // the padded last block
        }
        writeFully(headChannel, head, 0);
    }

    /**
     * Whether every byte is written: the whole body submitted and written, and the head.
     *
     * @return true once {@link #writeHead} has returned
     */
    public synchronized boolean complete() {
        return headWritten;
    }

    /**
     * Abandons the file: waiting and later calls fail, queued writes are dropped, and the thread that
     * writes stops after its current write; frees the buffers. Call it once nothing stages or submits
     * any more, whether the file is complete or not.
     */
    public void stop() {
        synchronized (this) {
            stopped = true;
            notifyAll();
        }
        synchronized (diskQueue) {
            diskQueue.clear();
            diskQueue.notifyAll();
        }
        Threads.joinUninterruptibly(disk); // the buffers must outlive the last write
        synchronized (this) {
            for (Arena arena : arenas) {
                try {
                    arena.close();
                } catch (IllegalStateException stillInUse) {
                    // only after an interrupt can a task still fill a range: its buffer stays allocated
                }
            }
            arenas.clear();
            free.clear();
            submitted.clear();
        }
    }

    /**
     * Gives up on the file because {@code cause} was thrown while filling it: the ranges that wait to be
     * staged, and every later call, throw {@code cause} itself (an unchecked one; others wrapped), so that
     * whichever thread reports first reports the real failure. Then call {@link #stop}.
     *
     * @param cause what made the writer give up
     */
    public synchronized void abandon(Throwable cause) {
        if (abandonedBy == null) {
            abandonedBy = Objects.requireNonNull(cause, "cause");
        }
        stopped = true;
        notifyAll();
    }

    private void throwIfFailed() {
        if (failure != null) {
            throw new UncheckedIOException(failure);
        }
        if (abandonedBy instanceof RuntimeException e) {
            throw e;
        }
        if (abandonedBy instanceof Error e) {
            throw e;
        }
        if (stopped) {
            throw new UncheckedIOException(new InterruptedIOException(abandonedBy == null ? "the write was abandoned"
                    : "the write was abandoned: " + abandonedBy));
        }
    }

    private void enqueue(Runnable write) {
        synchronized (diskQueue) {
            diskQueue.add(write);
            diskQueue.notifyAll();
        }
    }

    private void runDiskQueue() {
        while (true) {
            Runnable write;
            synchronized (diskQueue) {
                while (diskQueue.isEmpty()) {
                    if (stopped) {
                        return;
                    }
                    try {
                        diskQueue.wait(100);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                write = diskQueue.poll();
            }
            write.run();
        }
    }

    private static void writeFully(FileChannel channel, MemorySegment bytes, long position) throws IOException {
        for (long done = 0; done < bytes.byteSize(); ) {
            ByteBuffer buffer = bytes.asSlice(done, Math.min(MAX_WRITE, bytes.byteSize() - done)).asByteBuffer();
            while (buffer.hasRemaining()) {
                done += channel.write(buffer, position + done);
            }
        }
    }

    private static long roundUp(long value, long unit) {
        return Math.ceilDiv(value, unit) * unit;
    }
}
