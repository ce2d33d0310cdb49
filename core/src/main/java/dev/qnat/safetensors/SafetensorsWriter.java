package dev.qnat.safetensors;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.qnat.format.DType;
import dev.qnat.format.ElementCount;
import dev.qnat.format.TensorNames;
import dev.qnat.io.AtomicMappedFile;
import dev.qnat.io.FileSnapshot;
import dev.qnat.io.Prefault;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
 * Writes safetensors files with the layout computed first and the data produced straight into a mapped
 * temp file, renamed into place when complete ({@link AtomicMappedFile}). Tensors are laid out as the
 * reference writer lays them out, by dtype size (largest first) then name, and the header is padded
 * with spaces to a multiple of 8 bytes.
 */
public final class SafetensorsWriter {
    /** Produces a tensor's bytes into its slice of the mapped file. */
    @FunctionalInterface
    public interface Filler {
        /**
         * Writes the tensor's bytes, little-endian and in C order.
         *
         * @param destination the tensor's slice of the mapped file, exactly its byte size long
         * @throws IOException reading the data failed; the write is abandoned and the target left as it was
         */
        void fill(MemorySegment destination) throws IOException;
    }

    /**
     * One tensor to write: its bytes come from {@code filler}, which must fill exactly the tensor's size.
     *
     * @param name the tensor's name in the header: not empty, no lone surrogate, not {@code __metadata__}
     * @param dtype its element type, which with {@code shape} sets its byte size
     * @param shape its dimensions, outermost first (empty for a scalar), none negative; copied in
     * @param filler what writes its bytes (not called when a {@link BodyFiller} writes the file)
     */
    public record Entry(String name, DType dtype, long[] shape, Filler filler) {
        /**
         * Checks the name and takes a copy of {@code shape}.
         *
         * @throws IllegalArgumentException the name is empty or holds a lone surrogate
         * @throws NullPointerException the name, dtype, shape or filler is null
         */
        public Entry {
            TensorNames.check(Objects.requireNonNull(name, "name"));
            Objects.requireNonNull(dtype, "dtype");
            shape = shape.clone();
            Objects.requireNonNull(filler, "filler");
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
            return new Entry(name, dtype, shape, destination -> MemorySegment.copy(bytes, 0, destination, 0,
                    destination.byteSize()));
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
     * The fillers are called one at a time, in the order of {@code tensors}.
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
        write(target, metadata, tensors, slices -> {
            List<Prefault.Range> inFillOrder = tensors.stream().map(e -> new Prefault.Range(slices.get(e.name()), true)).toList();
            try (Prefault.Ahead ahead = Prefault.ahead(inFillOrder)) {
                for (Entry e : tensors) {
                    e.filler().fill(slices.get(e.name()));
                }
            }
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
        Set<String> names = new HashSet<>();
        for (Entry e : tensors) {
            if (e.name().equals(SafetensorsFile.METADATA_KEY) || !names.add(e.name())) {
                throw new IllegalArgumentException("tensor name '" + e.name() + "' is reserved or used twice");
            }
        }
        List<Entry> ordered = tensors.stream()
                .sorted(Comparator.comparingInt((Entry e) -> -e.dtype().bits()).thenComparing(Entry::name)).toList();
        long[] begins = new long[ordered.size()];
        long[] ends = new long[ordered.size()];
        long position = 0;
        for (int i = 0; i < ordered.size(); i++) {
            begins[i] = position;
            position = Math.addExact(position, ordered.get(i).byteSize());
            ends[i] = position;
        }
        byte[] header = header(metadata, ordered, begins, ends);
        long dataStart = 8L + header.length;
        return AtomicMappedFile.prepare(target, dataStart + position, file -> {
            file.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, header.length);
            MemorySegment.copy(header, 0, file, ValueLayout.JAVA_BYTE, 8, header.length);
            Map<String, MemorySegment> slices = new java.util.HashMap<>();
            for (int i = 0; i < ordered.size(); i++) {
                slices.put(ordered.get(i).name(), file.asSlice(dataStart + begins[i], ends[i] - begins[i]));
            }
            body.fill(slices);
        }, inputs);
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
