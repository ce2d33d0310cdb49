package dev.qnat.safetensors;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.qnat.format.DType;
import dev.qnat.format.ElementCount;
import dev.qnat.format.TensorNames;
import dev.qnat.io.AtomicMappedFile;
import dev.qnat.io.FileSnapshot;
import dev.qnat.io.StreamedFile;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Writes safetensors files with the layout computed first, into a temp file renamed into place when
 * complete ({@link AtomicMappedFile}): tensors with their own fillers are written front to back with
 * direct I/O ({@link StreamedFile}), in pieces where their entries allow it; a {@link BodyFiller} gets the
 * tensors' slices of a mapping. Tensors are laid out as the reference writer lays them out, by dtype size
 * (largest first) then name, and the header is padded with spaces to a multiple of 8 bytes.
 */
public final class SafetensorsWriter {
    /** Produces a tensor's bytes. */
    @FunctionalInterface
    public interface Filler {
        /**
         * Writes the tensor's bytes, little-endian and in C order.
         *
         * @param destination memory for the tensor's bytes, exactly its byte size long
         * @throws IOException reading the data failed; the write is abandoned and the target left as it was
         */
        void fill(MemorySegment destination) throws IOException;
    }

    /** Produces a run of a tensor's bytes: the writer asks for them in order, a few MiB at a time. */
    @FunctionalInterface
    public interface PieceFiller {
        /**
         * Writes the tensor's bytes {@code [offset, offset + piece.byteSize())}, little-endian and in C order.
         *
         * @param piece memory for those bytes
         * @param offset where they start in the tensor's bytes: a multiple of the entry's piece unit
         * @throws IOException reading the data failed; the write is abandoned and the target left as it was
         */
        void fill(MemorySegment piece, long offset) throws IOException;
    }

    /** The bytes a piece of a tensor holds at most (fewer, to end on a whole unit, or at the tensor's end). */
    private static final long PIECE_BYTES = 8 << 20;

    /**
     * One tensor to write: its bytes come from {@code filler}, which must fill exactly the tensor's size.
     *
     * @param name the tensor's name in the header: not empty, no lone surrogate, not {@code __metadata__}
     * @param dtype its element type, which with {@code shape} sets its byte size
     * @param shape its dimensions, outermost first (empty for a scalar), none negative; copied in
     * @param filler what writes its bytes (not called when a {@link BodyFiller} writes the file, nor when
     *        {@code pieces} does)
     * @param pieceUnit with {@code pieces}, the bytes its pieces start at multiples of; 0 without
     * @param pieces null, or what writes its bytes a piece at a time, in place of {@code filler}
     */
    public record Entry(String name, DType dtype, long[] shape, Filler filler, long pieceUnit, PieceFiller pieces) {
        /**
         * Checks the name and takes a copy of {@code shape}.
         *
         * @throws IllegalArgumentException the name is empty or holds a lone surrogate, or {@code pieceUnit}
         *         is not positive with {@code pieces} (or not 0 without)
         * @throws NullPointerException the name, dtype, shape or filler is null
         */
        public Entry {
            TensorNames.check(Objects.requireNonNull(name, "name"));
            Objects.requireNonNull(dtype, "dtype");
            shape = shape.clone();
            Objects.requireNonNull(filler, "filler");
            if (pieces == null ? pieceUnit != 0 : pieceUnit <= 0) {
                throw new IllegalArgumentException("tensor '" + name + "': piece unit " + pieceUnit);
            }
        }

        /**
         * A tensor written whole by {@code filler}.
         *
         * @param name the tensor's name in the header: not empty, no lone surrogate, not {@code __metadata__}
         * @param dtype its element type, which with {@code shape} sets its byte size
         * @param shape its dimensions, outermost first (empty for a scalar), none negative; copied in
         * @param filler what writes its bytes (not called when a {@link BodyFiller} writes the file)
         * @throws IllegalArgumentException the name is empty or holds a lone surrogate
         */
        public Entry(String name, DType dtype, long[] shape, Filler filler) {
            this(name, dtype, shape, filler, 0, null);
        }

        /**
         * A tensor written a piece at a time, so that no more than a piece of it is ever held in memory.
         *
         * @param name the tensor's name in the header
         * @param dtype its element type
         * @param shape its dimensions, outermost first (empty for a scalar)
         * @param unit the bytes every piece but the last is a multiple of, and starts at a multiple of
         * @param pieces what writes each piece
         * @return the entry
         * @throws IllegalArgumentException the name is empty or holds a lone surrogate, or {@code unit} is not
         *         positive
         */
        public static Entry inPieces(String name, DType dtype, long[] shape, long unit, PieceFiller pieces) {
            return new Entry(name, dtype, shape, destination -> pieces.fill(destination, 0), unit,
                    Objects.requireNonNull(pieces, "pieces"));
        }

        /**
         * A tensor whose bytes a {@link BodyFiller} provides.
         *
         * @param name the tensor's name in the header
         * @param dtype its element type
         * @param shape its dimensions, outermost first (empty for a scalar)
         * @return an entry whose own filler fails with {@link IllegalStateException} if it is called
         * @throws IllegalArgumentException the name is empty or holds a lone surrogate
         */
        public static Entry slot(String name, DType dtype, long[] shape) {
            return new Entry(name, dtype, shape, destination -> {
                throw new IllegalStateException("tensor '" + name + "' is filled by the body filler");
            });
        }

        /**
         * A tensor copied from existing bytes.
         *
         * @param name the tensor's name in the header
         * @param dtype its element type
         * @param shape its dimensions, outermost first (empty for a scalar)
         * @param bytes its data, already in safetensors layout; the tensor's byte size is copied from offset 0,
         *              so it must be at least that long (a mapped input tensor's {@code data}, say)
         * @return an entry whose filler copies {@code bytes} into its slice
         * @throws IllegalArgumentException the name is empty or holds a lone surrogate
         */
        public static Entry copy(String name, DType dtype, long[] shape, MemorySegment bytes) {
            return inPieces(name, dtype, shape, 1, (piece, offset) -> MemorySegment.copy(bytes, offset, piece, 0,
                    piece.byteSize()));
        }

        long byteSize() {
            long count = 1;
            for (long dim : shape) {
                if (dim < 0) {
                    throw new IllegalArgumentException("tensor '" + name + "' has a negative dimension");
                }
                count = ElementCount.times(count, dim);
                if (count < 0) {
                    throw new IllegalArgumentException("tensor '" + name + "' has too many elements");
                }
            }
            long size = dtype.sizeOf(count);
            if (size < 0) {
                throw new IllegalArgumentException("tensor '" + name + "': " + count + " elements of " + dtype
                        + " do not fill whole bytes");
            }
            return size;
        }
    }

    /** Fills all tensors at once, given each tensor's slice of the mapped file by name. */
    @FunctionalInterface
    public interface BodyFiller {
        /**
         * Writes every tensor's bytes, little-endian and in C order, in whatever order suits the producer.
         *
         * @param slices by tensor name, each tensor's slice of the mapped file, exactly its byte size long
         * @throws IOException reading the data failed; the write is abandoned and the target left as it was
         */
        void fill(Map<String, MemorySegment> slices) throws IOException;
    }

    private SafetensorsWriter() {}

    /**
     * Writes tensors whose bytes each come from their own filler, which reads no mapped file.
     *
     * @param target the file to create or replace; its folder must exist and be writable
     * @param metadata the {@code __metadata__} strings, in the order to store them; none stored when empty
     * @param tensors the tensors, in any order (they are laid out by dtype size, then name); names unique
     * @throws IOException the target is refused ({@link dev.qnat.io.OutputTarget}), a filler fails, or
     *                     the disk is full; the target is left as it was
     * @throws IllegalArgumentException a name is used twice or is {@code __metadata__}, or a shape has a
     *                                  negative dimension or too many elements
     */
    public static void write(Path target, Map<String, String> metadata, List<Entry> tensors) throws IOException {
        write(target, metadata, tensors, List.of());
    }

    /**
     * Writes tensors whose bytes each come from their own filler, reading data mapped from {@code inputs}.
     * The fillers are called one at a time, in file order (by dtype size, then name); an entry's bytes are
     * held in memory from its filler's call until they are written, whole or a piece at a time.
     *
     * @param target the file to create or replace; its folder must exist and be writable
     * @param metadata the {@code __metadata__} strings, in the order to store them; none stored when empty
     * @param tensors the tensors, in any order (they are laid out by dtype size, then name); names unique
     * @param inputs the mapped files the fillers read (checked not to be the target, and unchanged after the fill)
     * @throws IOException the target is refused ({@link dev.qnat.io.OutputTarget}) or is one of the
     *                     inputs, an input changed while it was read, a filler fails, or the disk is full;
     *                     the target is left as it was
     * @throws IllegalArgumentException a name is used twice or is {@code __metadata__}, or a shape has a
     *                                  negative dimension or too many elements
     */
    public static void write(Path target, Map<String, String> metadata, List<Entry> tensors, List<FileSnapshot> inputs)
            throws IOException {
        Layout layout = new Layout(metadata, tensors);
        AtomicMappedFile.writeStreamed(target, layout.size(), layout.dataStart(), 4, file -> {
            for (int i = 0; i < layout.ordered.size(); i++) {
                Entry e = layout.ordered.get(i);
                long start = layout.dataStart() + layout.begins[i];
                long length = layout.ends[i] - layout.begins[i];
                long piece = e.pieces() == null ? length : Math.max(e.pieceUnit(), PIECE_BYTES / e.pieceUnit() * e.pieceUnit());
                for (long offset = 0; offset < length; offset += piece) {
                    StreamedFile.Range range = file.stage(start + offset, start + Math.min(length, offset + piece));
                    if (e.pieces() == null) {
                        e.filler().fill(range.bytes());
                    } else {
                        e.pieces().fill(range.bytes(), offset);
                    }
                    file.submit(range);
                }
            }
            file.writeHead(MemorySegment.ofArray(layout.head()));
        }, inputs);
    }

    /**
     * Writes tensors described by {@code tensors} (their own fillers are not called) whose bytes all come
     * from {@code body}, for producers that fill several tensors in one pass.
     *
     * @param target the file to create or replace; its folder must exist and be writable
     * @param metadata the {@code __metadata__} strings, in the order to store them; none stored when empty
     * @param tensors the tensors, in any order (they are laid out by dtype size, then name); names unique
     * @param body what writes every tensor's bytes, reading no mapped file
     * @throws IOException the target is refused ({@link dev.qnat.io.OutputTarget}), a filler fails, or
     *                     the disk is full; the target is left as it was
     * @throws IllegalArgumentException a name is used twice or is {@code __metadata__}, or a shape has a
     *                                  negative dimension or too many elements
     */
    public static void write(Path target, Map<String, String> metadata, List<Entry> tensors, BodyFiller body)
            throws IOException {
        write(target, metadata, tensors, body, List.of());
    }

    /**
     * Writes as {@link #write(Path, Map, List, BodyFiller)} does, from data mapped from {@code inputs}.
     *
     * @param target the file to create or replace; its folder must exist and be writable
     * @param metadata the {@code __metadata__} strings, in the order to store them; none stored when empty
     * @param tensors the tensors, in any order (they are laid out by dtype size, then name); names unique
     * @param body what writes every tensor's bytes
     * @param inputs the mapped files {@code body} reads (checked not to be the target, and unchanged after the fill)
     * @throws IOException the target is refused ({@link dev.qnat.io.OutputTarget}) or is one of the
     *                     inputs, an input changed while it was read, a filler fails, or the disk is full;
     *                     the target is left as it was
     * @throws IllegalArgumentException a name is used twice or is {@code __metadata__}, or a shape has a
     *                                  negative dimension or too many elements
     */
    public static void write(Path target, Map<String, String> metadata, List<Entry> tensors, BodyFiller body,
                             List<FileSnapshot> inputs) throws IOException {
        try (AtomicMappedFile.Prepared prepared = prepare(target, metadata, tensors, body, inputs)) {
            prepared.commit();
        }
    }

    /**
     * Writes the file complete beside {@code target} without renaming it into place yet
     * ({@link AtomicMappedFile#prepare}), for a writer that puts several files in place together.
     *
     * @param target the file to create or replace; its folder must exist and be writable
     * @param metadata the {@code __metadata__} strings, in the order to store them; none stored when empty
     * @param tensors the tensors, in any order (they are laid out by dtype size, then name); names unique
     * @param body what writes every tensor's bytes (the entries' own fillers are not called)
     * @param inputs the mapped files {@code body} reads (checked not to be the target, and unchanged after the fill)
     * @return the complete, forced temp file: {@link AtomicMappedFile.Prepared#commit} puts it in place,
     *         closing it uncommitted deletes it
     * @throws IOException the target is refused ({@link dev.qnat.io.OutputTarget}) or is one of the
     *                     inputs, an input changed while it was read, a filler fails, or the disk is full;
     *                     the temp file is deleted and the target left as it was
     * @throws IllegalArgumentException a name is used twice or is {@code __metadata__}, or a shape has a
     *                                  negative dimension or too many elements
     */
    public static AtomicMappedFile.Prepared prepare(Path target, Map<String, String> metadata, List<Entry> tensors,
                                                    BodyFiller body, List<FileSnapshot> inputs) throws IOException {
        Layout layout = new Layout(metadata, tensors);
        return AtomicMappedFile.prepare(target, layout.size(), file -> {
            file.asSlice(0, layout.dataStart()).copyFrom(MemorySegment.ofArray(layout.head()));
            Map<String, MemorySegment> slices = new java.util.HashMap<>();
            for (int i = 0; i < layout.ordered.size(); i++) {
                slices.put(layout.ordered.get(i).name(), file.asSlice(layout.dataStart() + layout.begins[i],
                        layout.ends[i] - layout.begins[i]));
            }
            body.fill(slices);
        }, inputs);
    }

    /** Where each tensor goes, and the header that says so. */
    private static final class Layout {
        final List<Entry> ordered;
        final long[] begins;
        final long[] ends;
        private final byte[] header;

        Layout(Map<String, String> metadata, List<Entry> tensors) {
            Set<String> names = new HashSet<>();
            for (Entry e : tensors) {
                if (e.name().equals(SafetensorsFile.METADATA_KEY) || !names.add(e.name())) {
                    throw new IllegalArgumentException("tensor name '" + e.name() + "' is reserved or used twice");
                }
            }
            ordered = tensors.stream()
                    .sorted(Comparator.comparingInt((Entry e) -> -e.dtype().bits()).thenComparing(Entry::name)).toList();
            begins = new long[ordered.size()];
            ends = new long[ordered.size()];
            long position = 0;
            for (int i = 0; i < ordered.size(); i++) {
                begins[i] = position;
                position = Math.addExact(position, ordered.get(i).byteSize());
                ends[i] = position;
            }
            header = header(metadata, ordered, begins, ends);
        }

        /** The bytes before the data: the header's length as a little-endian u64, then the header. */
        byte[] head() {
            byte[] head = new byte[8 + header.length];
            ByteBuffer.wrap(head).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).put(header);
            return head;
        }

        long dataStart() {
            return 8L + header.length;
        }

        long size() {
            return dataStart() + (ends.length == 0 ? 0 : ends[ends.length - 1]);
        }
    }

    private static byte[] header(Map<String, String> metadata, List<Entry> ordered, long[] begins, long[] ends) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator json = new JsonFactory().createGenerator(out)) {
            json.writeStartObject();
            if (!metadata.isEmpty()) {
                json.writeObjectFieldStart(SafetensorsFile.METADATA_KEY);
                for (Map.Entry<String, String> m : metadata.entrySet()) {
                    json.writeStringField(m.getKey(), m.getValue());
                }
                json.writeEndObject();
            }
            for (int i = 0; i < ordered.size(); i++) {
                Entry e = ordered.get(i);
                json.writeObjectFieldStart(e.name());
                json.writeStringField("dtype", e.dtype().name());
                json.writeFieldName("shape");
                json.writeArray(e.shape(), 0, e.shape().length);
                json.writeFieldName("data_offsets");
                json.writeArray(new long[] {begins[i], ends[i]}, 0, 2);
                json.writeEndObject();
            }
            json.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int padding = (8 - out.size() % 8) % 8;
        byte[] spaces = new byte[padding];
        Arrays.fill(spaces, (byte) ' ');
        out.writeBytes(spaces);
        return out.toByteArray();
    }
}
