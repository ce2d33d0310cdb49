package dev.qnat.format;

import static dev.qnat.format.QnatLayout.DATA;
import static dev.qnat.format.QnatLayout.NESTED_SCALES;
import static dev.qnat.format.QnatLayout.SCALES;
import static dev.qnat.format.QnatLayout.TABLE;

import dev.qnat.concurrent.Workers;
import dev.qnat.io.AtomicMappedFile;
import dev.qnat.io.Crc32c;
import dev.qnat.io.FileSnapshot;
import dev.qnat.io.Prefault;
import dev.qnat.io.StreamedFile;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.NonFiniteValueException;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.nf4.ScaleRule;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.zip.CRC32C;

/**
 * Writes QNAT v2 files (src/spec/qnat-v2.md). The whole layout is computed first; then a temp file
 * beside the target is sized once, and every tensor is quantized (or copied) into memory staged for its
 * part of the file, in parallel over tensors and block ranges, and written from there with direct I/O
 * ({@link StreamedFile}) as soon as the parts before it are: the task that finishes a tensor
 * double-quantizes its scales where asked, computes its section CRCs and hands it over. The header goes
 * last, then the file is forced to disk and renamed onto the target in one atomic step. On any failure
 * the temp file is removed and the target is left as it was. Staged memory is reused and bounded by a
 * few tensors at a time, so files larger than the heap, or than free memory, write fine.
 */
public final class QnatWriter {
    /** Told, from worker threads, how many input bytes were just processed. */
    @FunctionalInterface
    public interface Progress {
        /**
         * Counts input bytes just processed. Called from several worker threads at once, so it must be
         * thread-safe.
         *
         * @param inputBytes the bytes a task just finished: a RAW tensor's bytes, the source bytes of a
         *     range of blocks quantized, or an already encoded tensor's packed codes
         */
        void advance(long inputBytes);

        /** Ignores every report. */
        Progress NONE = bytes -> { };
    }

    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    // Quantization tasks cover about this many elements, so that big tensors spread over all threads.
    private static final long ELEMENTS_PER_TASK = 1 << 20;
    // RAW tensors are staged and written in pieces of this many bytes.
    private static final long RAW_PIECE = 4 << 20;

    private QnatWriter() {}

    /**
     * Writes with one thread per core and no progress reports.
     *
     * @param target the file to create or replace, in an existing, writable folder; a symbolic link is
     *     written through
     * @param metadata the metadata pairs, stored in the map's iteration order; keys not empty
     * @param tensors the tensors in file order, their names distinct; their data is read, not kept
     * @throws IllegalArgumentException two tensors have the same name, or a metadata key is empty
     * @throws NonFiniteTensorException a tensor to quantize holds a NaN or an infinity
     * @throws IOException the target is refused (a folder, a device) or could not be written
     *     (disk full, permissions, an interrupt); the target is unchanged
     */
    public static void write(Path target, Map<String, String> metadata, List<TensorToWrite> tensors) throws IOException {
        write(target, metadata, tensors, Runtime.getRuntime().availableProcessors(), Progress.NONE);
    }

    /**
     * Total input bytes of the tensors: what {@link Progress} counts towards.
     *
     * @param tensors the tensors to write
     * @return the sum of their {@code data} sizes in bytes, an already encoded tensor (whose data is
     *     empty) adding its packed codes
     */
    public static long inputBytes(List<TensorToWrite> tensors) {
        return tensors.stream().mapToLong(QnatWriter::progressBytes).sum();
    }

    /** What a tensor's tasks tell {@link Progress} in all: its data, or an encoded tensor's packed codes. */
    private static long progressBytes(TensorToWrite tensor) {
        return tensor.encoded() != null ? Nf4.packedSize(tensor.elementCount()) : tensor.data().byteSize();
    }

    /**
     * Writes {@code tensors} with {@code metadata} to {@code target}, on {@code threads} threads.
     *
     * @param target the file to create or replace, in an existing, writable folder; a symbolic link is
     *     written through
     * @param metadata the metadata pairs, stored in the map's iteration order; keys not empty
     * @param tensors the tensors in file order, their names distinct; their data is read, not kept
     * @param threads worker threads, at least 1
     * @param progress told from the workers of the input bytes processed; {@link Progress#NONE} for none
     * @throws IllegalArgumentException {@code threads} is below 1, two tensors have the same name, or a
     *     metadata key is empty
     * @throws NonFiniteTensorException a tensor to quantize holds a NaN or an infinity
     * @throws IOException the target is refused (a folder, a device) or could not be written
     *     (disk full, permissions, an interrupt); the target is unchanged
     */
    public static void write(Path target, Map<String, String> metadata, List<TensorToWrite> tensors, int threads,
                             Progress progress) throws IOException {
        write(target, metadata, tensors, threads, progress, List.of());
    }

    /**
     * Writes as {@link #write(Path, Map, List, int, Progress)} does, from tensors mapped from
     * {@code inputs}: the target may not be one of them, and none may change while they are read.
     *
     * @param target the file to create or replace, in an existing, writable folder; a symbolic link is
     *     written through
     * @param metadata the metadata pairs, stored in the map's iteration order; keys not empty
     * @param tensors the tensors in file order, their names distinct; their data is read, not kept
     * @param threads worker threads, at least 1
     * @param progress told from the workers of the input bytes processed; {@link Progress#NONE} for none
     * @param inputs snapshots of the files the tensors' data is mapped from, checked before and after the
     *     fill; empty when none is
     * @throws IllegalArgumentException {@code threads} is below 1, two tensors have the same name, or a
     *     metadata key is empty
     * @throws NonFiniteTensorException a tensor to quantize holds a NaN or an infinity
     * @throws dev.qnat.io.FileSnapshot.InputChangedException an input was truncated or written to meanwhile
     * @throws IOException the target is refused (a folder, a device, an input) or could not be written
     *     (disk full, permissions, an interrupt); the target is unchanged
     */
    public static void write(Path target, Map<String, String> metadata, List<TensorToWrite> tensors, int threads,
                             Progress progress, List<FileSnapshot> inputs) throws IOException {
        write(target, metadata, tensors, threads, progress, inputs, false);
    }

    /**
     * Writes as {@link #write(Path, Map, List, int, Progress, List)} does; with {@code measure}, also
     * measures each tensor quantized here while it is quantized ({@link Nf4#quantizeBlocks(MemorySegment,
     * FloatType, int, long, long, MemorySegment, MemorySegment, QuantizationError, MemorySegment)}), as
     * read back from the file: at the double-quantized absmax where there is one.
     *
     * @param target the file to create or replace, in an existing, writable folder; a symbolic link is
     *     written through
     * @param metadata the metadata pairs, stored in the map's iteration order; keys not empty
     * @param tensors the tensors in file order, their names distinct; their data is read, not kept
     * @param threads worker threads, at least 1
     * @param progress told from the workers of the input bytes processed; {@link Progress#NONE} for none
     * @param inputs snapshots of the files the tensors' data is mapped from, checked before and after the
     *     fill; empty when none is
     * @param measure whether to measure the error of each tensor quantized here
     * @return by tensor name, the error of every tensor quantized here; empty without {@code measure}
     * @throws IllegalArgumentException {@code threads} is below 1, two tensors have the same name, or a
     *     metadata key is empty
     * @throws NonFiniteTensorException a tensor to quantize holds a NaN or an infinity
     * @throws dev.qnat.io.FileSnapshot.InputChangedException an input was truncated or written to meanwhile
     * @throws IOException the target is refused (a folder, a device, an input) or could not be written
     *     (disk full, permissions, an interrupt); the target is unchanged
     */
    public static Map<String, QuantizationError> write(Path target, Map<String, String> metadata,
                                                       List<TensorToWrite> tensors, int threads, Progress progress,
                                                       List<FileSnapshot> inputs, boolean measure) throws IOException {
        Objects.requireNonNull(target, "target");
        Objects.requireNonNull(progress, "progress");
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        }
        QnatLayout layout = new QnatLayout(Objects.requireNonNull(metadata, "metadata"), List.copyOf(tensors));
        Map<String, QuantizationError> errors = new ConcurrentHashMap<>();
        AtomicMappedFile.writeStreamed(target, layout.fileLength, layout.headerLength, 2 * threads + 2, file -> {
            int[][] crcs = new int[tensors.size()][QnatLayout.SECTIONS];
            float[] dqOffsets = writeSections(file, layout, tensors, threads, progress, measure ? errors : null, crcs);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment head = arena.allocate(layout.headerLength);
                writeHeader(head, layout, tensors, dqOffsets, crcs);
                file.writeHead(head);
            }
        }, inputs);
        return Map.copyOf(errors);
    }

    /**
     * Stages and submits every tensor's part of the file; returns the double-quantization offset of each
     * tensor (0 if none) and puts its section CRCs in {@code crcs}. With {@code errors}, puts there the
     * error of each tensor quantized here.
     */
    private static float[] writeSections(StreamedFile file, QnatLayout layout, List<TensorToWrite> tensors,
                                         int threads, Progress progress, Map<String, QuantizationError> errors,
                                         int[][] crcs) throws IOException {
        float[] dqOffsets = new float[tensors.size()];
        List<Quantization> quantizations = new ArrayList<>();
        try (Workers workers = new Workers("qnat-writer", threads)) {
            List<Runnable> tasks = new ArrayList<>();
            for (int t = 0; t < tensors.size(); t++) {
                TensorToWrite tensor = tensors.get(t);
                int index = t;
                if (tensor.encoding() == Encoding.RAW) {
                    tasks.add(() -> {
                        crcs[index][DATA] = copyRaw(file, layout, index, tensor.data());
                        progress.advance(tensor.data().byteSize());
                    });
                } else if (tensor.encoded() != null) {
                    tasks.add(() -> {
                        TensorBytes bytes = TensorBytes.stage(file, layout, index);
                        storeEncoded(bytes, tensor.encoded());
                        dqOffsets[index] = tensor.encoded().dqOffset();
                        bytes.submit(crcs[index]);
                        progress.advance(progressBytes(tensor));
                    });
                } else {
                    Quantization quantization = new Quantization(file, layout, index, tensor, errors, dqOffsets,
                            crcs[index]);
                    quantizations.add(quantization);
                    quantization.addTasks(tasks, progress);
                }
            }
            try (Prefault.Ahead ahead = Prefault.ahead(inputPages(tensors))) {
                workers.runAll(abandoningOnFailure(file, tasks));
            } catch (UncheckedIOException e) {
                throw e.getCause();
            }
        } finally {
            quantizations.forEach(Quantization::freeScratchAfterFailure);
        }
        return dqOffsets;
    }

    /**
     * The tasks, each abandoning {@code file} when it fails, so that no other task waits on for a range
     * that will never be submitted.
     */
    private static List<Runnable> abandoningOnFailure(StreamedFile file, List<Runnable> tasks) {
        return tasks.stream().<Runnable>map(task -> () -> {
            try {
                task.run();
            } catch (RuntimeException | Error e) {
                file.abandon(e);
                throw e;
            }
        }).toList();
    }

    /** The bytes of a RAW tensor's part of the file, copied in pieces; returns their CRC. */
    private static int copyRaw(StreamedFile file, QnatLayout layout, int t, MemorySegment data) {
        CRC32C crc = new CRC32C();
        long start = layout.tensorStart(t);
        long end = layout.tensorEnd(t);
        for (long from = start; from < end; from += RAW_PIECE) {
            StreamedFile.Range range = file.stage(from, Math.min(end, from + RAW_PIECE));
            MemorySegment piece = range.bytes();
            long copied = Math.max(0, Math.min(piece.byteSize(), data.byteSize() - (from - start)));
            MemorySegment.copy(data, from - start, piece, 0, copied);
            piece.asSlice(copied).fill((byte) 0); // the alignment gap after the data
            Crc32c.update(crc, piece.asSlice(0, copied));
            file.submit(range);
        }
        return (int) crc.getValue();
    }

    /**
     * A tensor's part of the file, {@code [tensorStart, tensorEnd)}, staged whole: its sections, then the
     * alignment gap after each, zeroed here (the staged memory is reused).
     */
    private record TensorBytes(StreamedFile file, StreamedFile.Range range, QnatLayout layout, int tensor,
                               MemorySegment bytes) {
        static TensorBytes stage(StreamedFile file, QnatLayout layout, int t) {
            long start = layout.tensorStart(t);
            long end = layout.tensorEnd(t);
            StreamedFile.Range range = start < end ? file.stage(start, end) : null;
            MemorySegment bytes = range != null ? range.bytes() : MemorySegment.NULL;
            long zeroFrom = 0;
            for (int s = 0; s < QnatLayout.SECTIONS; s++) {
                if (layout.sectionLengths[t][s] >= 0) {
                    long at = layout.sectionOffsets[t][s] - start;
                    bytes.asSlice(zeroFrom, at - zeroFrom).fill((byte) 0);
                    zeroFrom = at + layout.sectionLengths[t][s];
                }
            }
            bytes.asSlice(zeroFrom).fill((byte) 0);
            return new TensorBytes(file, range, layout, t, bytes);
        }

        /** Section {@code s} of the tensor, empty where it has none. */
        MemorySegment section(int s) {
            long length = Math.max(0, layout.sectionLengths[tensor][s]);
            return bytes.asSlice(length == 0 ? 0 : layout.sectionOffsets[tensor][s] - layout.tensorStart(tensor), length);
        }

        /** Puts each section's CRC in {@code crcs} and submits the bytes to be written. */
        void submit(int[] crcs) {
            for (int s = 0; s < QnatLayout.SECTIONS; s++) {
                if (layout.sectionLengths[tensor][s] >= 0) {
                    crcs[s] = Crc32c.of(section(s));
                }
            }
            if (range != null) {
                file.submit(range);
            }
        }
    }

    /**
     * One NF4 tensor quantized here: the tasks that quantize its block ranges, and, run by the task that
     * finishes last, the double quantization and the error figures. A double-quantized tensor keeps its
     * f32 absmax (and, measured, each block's error terms) in scratch memory from its first task to its
     * last only, so that a file's scratch stays the size of the few tensors being quantized at a time,
     * not of the whole model (16 bytes per block of 64: 1.7 GB for a 7 B-parameter model).
     */
    private static final class Quantization {
        private final TensorToWrite tensor;
        private final int index;
        private final StreamedFile file;
        private final QnatLayout layout;
        private final int[] crcs;
        private final long blocks;
        private final Map<String, QuantizationError> errors;
        private final float[] dqOffsets;
        private final AtomicInteger unfinishedTasks = new AtomicInteger();
        // Measured: each task's error, summed by the last.
        private final List<QuantizationError> taskErrors;
        private TensorBytes bytes;
        private Arena scratch;
        private MemorySegment absmax;
        private MemorySegment terms;

        Quantization(StreamedFile file, QnatLayout layout, int index, TensorToWrite tensor,
                     Map<String, QuantizationError> errors, float[] dqOffsets, int[] crcs) {
            this.tensor = tensor;
            this.crcs = crcs;
            this.index = index;
            this.file = file;
            this.layout = layout;
            this.errors = errors;
            this.dqOffsets = dqOffsets;
            blocks = Nf4.blockCount(tensor.elementCount(), tensor.blockSize());
            taskErrors = errors != null ? Collections.synchronizedList(new ArrayList<>()) : null;
        }

        /** Adds the tasks that quantize the tensor, each a range of about ELEMENTS_PER_TASK elements. */
        void addTasks(List<Runnable> tasks, Progress progress) {
            FloatType type = tensor.dtype().floatType().orElseThrow();
            long count = tensor.elementCount();
            long blocksPerTask = Math.max(1, ELEMENTS_PER_TASK / tensor.blockSize());
            unfinishedTasks.set((int) Math.max(1, (blocks + blocksPerTask - 1) / blocksPerTask));
            if (blocks == 0) {
                tasks.add(this::taskDone);
            }
            for (long first = 0; first < blocks; first += blocksPerTask) {
                long from = first;
                long to = Math.min(blocks, first + blocksPerTask);
                tasks.add(() -> {
                    try {
                        quantizeRange(type, from, to);
                    } catch (NonFiniteValueException e) {
                        throw new NonFiniteTensorException(tensor.name(), e);
                    }
                    long elements = Math.min(count, to * tensor.blockSize()) - from * tensor.blockSize();
                    progress.advance(tensor.dtype().sizeOf(elements));
                    taskDone();
                });
            }
        }

        /**
         * Quantizes blocks {@code [from, to)}, measuring them where asked. Double-quantized MSE scales are
         * only chosen here: their codes follow once the stored scales are known (see taskDone).
         */
        private void quantizeRange(FloatType type, long from, long to) {
            MemorySegment absmax = absmax();
            MemorySegment data = bytes.section(DATA);
            QuantizationError error = taskErrors == null ? null : new QuantizationError();
            if (tensor.scaleRule() == ScaleRule.MSE && tensor.doubleQuant()) {
                Nf4.mseScales(tensor.data(), type, tensor.blockSize(), from, to, absmax);
                return;
            }
            if (tensor.scaleRule() == ScaleRule.MSE || error == null) {
                Nf4.quantizeBlocks(tensor.data(), type, tensor.blockSize(), from, to, data, absmax, tensor.scaleRule(),
                        error);
            } else {
                Nf4.quantizeBlocks(tensor.data(), type, tensor.blockSize(), from, to, data, absmax, error, terms);
            }
            if (error != null) {
                taskErrors.add(error);
            }
        }

        /**
         * Where the tasks put the f32 absmax: scratch, made by the first task, or the file's scales. The
         * first task also stages the tensor's bytes.
         */
        private synchronized MemorySegment absmax() {
            if (absmax == null) {
                bytes = TensorBytes.stage(file, layout, index);
                if (tensor.doubleQuant()) {
                    scratch = Arena.ofShared();
                    absmax = scratch.allocate(4 * blocks, 64);
                    boolean keepTerms = taskErrors != null && tensor.scaleRule() == ScaleRule.ABSMAX;
                    terms = keepTerms ? scratch.allocate(12 * blocks, 64) : null;
                } else {
                    absmax = bytes.section(SCALES);
                }
            }
            return absmax;
        }

        /** The last task to finish double-quantizes and measures the tensor, then frees its scratch. */
        private void taskDone() {
            if (unfinishedTasks.decrementAndGet() > 0) {
                return;
            }
            absmax(); // a tensor of no blocks has had no task stage its bytes
            QuantizationError measured = new QuantizationError();
            if (taskErrors != null) {
                taskErrors.forEach(measured::add);
            }
            if (tensor.doubleQuant()) {
                MemorySegment values = absmax();
                MemorySegment scaleCodes = bytes.section(SCALES);
                MemorySegment nested = bytes.section(NESTED_SCALES);
                if (tensor.scaleRule() == ScaleRule.MSE) {
                    // The codes follow the scales as stored (src/spec/nf4-codec.md, "MSE scales").
                    dqOffsets[index] = DoubleQuantization.quantizeToStored(values, blocks, scaleCodes, nested);
                    measured = encodeAtStoredScales(values);
                } else {
                    dqOffsets[index] = DoubleQuantization.quantize(values, blocks, scaleCodes, nested);
                    if (errors != null) {
                        measured = errorAtStoredAbsmax(measured, values, dqOffsets[index]);
                    }
                }
                MemorySegment.copy(DoubleQuantization.table(), 0, bytes.section(TABLE), F32, 0,
                        DoubleQuantization.TABLE_SIZE);
                freeScratch();
            }
            if (errors != null) {
                errors.put(tensor.name(), measured);
            }
            bytes.submit(crcs);
        }

        /**
         * Writes the codes of a tensor whose MSE scales were double-quantized, against {@code stored}, the
         * scales as the file stores them, measuring them where asked.
         */
        private QuantizationError encodeAtStoredScales(MemorySegment stored) {
            QuantizationError error = errors == null ? null : new QuantizationError();
            Nf4.encodeBlocks(tensor.data(), tensor.dtype().floatType().orElseThrow(), tensor.blockSize(), 0, blocks,
                    stored, bytes.section(DATA), error);
            return error;
        }

        /** The double-quantized tensor's error at the absmax values as the file stores them. */
        private QuantizationError errorAtStoredAbsmax(QuantizationError measured, MemorySegment values, float dqOffset) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment stored = arena.allocate(4 * blocks, 64);
                DoubleQuantization.dequantize(bytes.section(SCALES), bytes.section(NESTED_SCALES), dqOffset,
                        DoubleQuantization.table(), blocks, stored);
                return Nf4.errorAtStoredAbsmax(measured, terms, values, stored, blocks, tensor.data(),
                        tensor.dtype().floatType().orElseThrow(), tensor.blockSize(), bytes.section(DATA));
            }
        }

        /** Frees the scratch memory, if any is held; no task of the tensor runs any more. */
        private synchronized void freeScratch() {
            if (scratch != null) {
                scratch.close();
                scratch = null;
            }
        }

        /**
         * Frees what a tensor whose tasks did not all finish still holds. Workers.runAll waits for the
         * running tasks after a failure; only after an interrupt can one still be in the kernel, and then
         * its scratch stays allocated rather than freed under it.
         */
        void freeScratchAfterFailure() {
            try {
                freeScratch();
            } catch (IllegalStateException stillInUse) {
                // see above
            }
        }
    }

    /** Each tensor's input, in task order: what the tasks read. */
    private static List<Prefault.Range> inputPages(List<TensorToWrite> tensors) {
        List<Prefault.Range> ranges = new ArrayList<>();
        for (TensorToWrite tensor : tensors) {
            if (tensor.encoded() == null) {
                ranges.add(new Prefault.Range(tensor.data(), false));
            }
        }
        return ranges;
    }

    private static void storeEncoded(TensorBytes bytes, TensorToWrite.Encoded encoded) {
        MemorySegment codes = bytes.section(DATA);
        if (encoded.highNibbleFirst()) {
            Nf4.swapNibbles(encoded.codes(), codes);
        } else {
            codes.copyFrom(encoded.codes());
        }
        bytes.section(SCALES).copyFrom(encoded.scales());
        if (encoded.nestedScales() != null) {
            bytes.section(NESTED_SCALES).copyFrom(encoded.nestedScales());
            bytes.section(TABLE).copyFrom(encoded.table());
        }
    }

    /** The header, {@code [0, headerLength)}, into {@code file}: the tensors' section CRCs are {@code crcs}. */
    private static void writeHeader(MemorySegment file, QnatLayout layout, List<TensorToWrite> tensors, float[] dqOffsets,
                                    int[][] crcs) {
        MemorySegment.copy(layout.metadata, 0, file, ValueLayout.JAVA_BYTE, QnatLayout.FIXED_HEADER_SIZE,
                layout.metadata.length);
        MemorySegment strings = file.asSlice(layout.stringsOffset, layout.stringsLength);
        for (int t = 0; t < tensors.size(); t++) {
            TensorToWrite tensor = tensors.get(t);
            long[] shape = tensor.shape();
            writeEntry(file, layout, t, tensor, dqOffsets[t], crcs[t]);
            MemorySegment.copy(layout.names[t], 0, strings, ValueLayout.JAVA_BYTE, layout.nameOffsets[t],
                    layout.names[t].length);
            MemorySegment.copy(shape, 0, strings, U64, layout.dimsOffsets[t], shape.length);
        }
        for (int i = 0; i < layout.nameIndex.length; i++) {
            file.set(U32, layout.indexOffset + 4L * i, layout.nameIndex[i]);
        }
        file.asSlice(QnatField.MAGIC.offset(), QnatField.MAGIC.size()).copyFrom(MemorySegment.ofArray(QnatLayout.MAGIC));
        QnatField.VERSION.put(file, 0, QnatLayout.VERSION);
        QnatField.FLAGS.put(file, 0, 0);
        QnatField.HEADER_LENGTH.put(file, 0, layout.headerLength);
        QnatField.FILE_LENGTH.put(file, 0, layout.fileLength);
        QnatField.METADATA_OFFSET.put(file, 0, QnatLayout.FIXED_HEADER_SIZE);
        QnatField.METADATA_LENGTH.put(file, 0, layout.metadata.length);
        QnatField.TABLE_OFFSET.put(file, 0, layout.tableOffset);
        QnatField.TABLE_LENGTH.put(file, 0, (long) QnatLayout.ENTRY_SIZE * tensors.size());
        QnatField.INDEX_OFFSET.put(file, 0, layout.indexOffset);
        QnatField.INDEX_LENGTH.put(file, 0, 4L * tensors.size());
        QnatField.STRINGS_OFFSET.put(file, 0, layout.stringsOffset);
        QnatField.STRINGS_LENGTH.put(file, 0, layout.stringsLength);
        QnatField.TENSOR_COUNT.put(file, 0, tensors.size());
        QnatField.ENTRY_SIZE.put(file, 0, QnatLayout.ENTRY_SIZE);
        QnatField.HEADER_CRC32C.put(file, 0, QnatLayout.headerCrc(file, layout.headerLength));
    }

    /** Tensor {@code t}'s entry in the table, with its section CRCs {@code crcs}. */
    private static void writeEntry(MemorySegment file, QnatLayout layout, int t, TensorToWrite tensor, float dqOffset,
                                   int[] crcs) {
        long entry = layout.tableOffset + (long) t * QnatLayout.ENTRY_SIZE;
        QnatField.NAME_OFFSET.put(file, entry, layout.nameOffsets[t]);
        QnatField.NAME_LENGTH.put(file, entry, layout.names[t].length);
        QnatField.RANK.put(file, entry, tensor.shape().length);
        QnatField.DIMS_OFFSET.put(file, entry, layout.dimsOffsets[t]);
        QnatField.ELEMENT_COUNT.put(file, entry, tensor.elementCount());
        QnatField.DTYPE.put(file, entry, tensor.dtype().code());
        QnatField.ENCODING.put(file, entry, tensor.encoding().ordinal());
        QnatField.SCALES.put(file, entry, tensor.scales().ordinal());
        QnatField.BLOCK_SIZE.put(file, entry, tensor.blockSize());
        QnatField.NESTED_BLOCK_SIZE.put(file, entry, tensor.doubleQuant() ? DoubleQuantization.GROUP_SIZE : 0);
        QnatField.DQ_OFFSET.putFloat(file, entry, dqOffset);
        for (int s = 0; s < QnatLayout.SECTIONS; s++) {
            long length = layout.sectionLengths[t][s];
            if (length >= 0) {
                long offset = layout.sectionOffsets[t][s];
                long descriptor = entry + QnatField.sectionDescriptor(s);
                QnatField.SECTION_OFFSET.put(file, descriptor, offset);
                QnatField.SECTION_LENGTH.put(file, descriptor, length);
                QnatField.SECTION_CRC32C.put(file, descriptor, crcs[s]);
            }
        }
    }
}
