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
        void fill(MemorySegment destination) throws IOException;
    }

    /** One tensor to write: its bytes come from {@code filler}, which must fill exactly the tensor's size. */
    public record Entry(String name, DType dtype, long[] shape, Filler filler) {
        public Entry {
            TensorNames.check(Objects.requireNonNull(name, "name"));
            Objects.requireNonNull(dtype, "dtype");
            shape = shape.clone();
            Objects.requireNonNull(filler, "filler");
        }

        /** A tensor whose bytes a {@link BodyFiller} provides. */
        public static Entry slot(String name, DType dtype, long[] shape) {
            return new Entry(name, dtype, shape, destination -> {
                throw new IllegalStateException("tensor '" + name + "' is filled by the body filler");
            });
        }

        /** A tensor copied from existing bytes. */
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
        void fill(Map<String, MemorySegment> slices) throws IOException;
    }

    private SafetensorsWriter() {}

    /** Writes tensors whose bytes each come from their own filler. */
    public static void write(Path target, Map<String, String> metadata, List<Entry> tensors) throws IOException {
        write(target, metadata, tensors, List.of());
    }

    /** Writes tensors whose bytes each come from their own filler, reading data mapped from {@code inputs}. */
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
     */
    public static void write(Path target, Map<String, String> metadata, List<Entry> tensors, BodyFiller body)
            throws IOException {
        write(target, metadata, tensors, body, List.of());
    }

    /** Writes as {@link #write(Path, Map, List, BodyFiller)} does, from data mapped from {@code inputs}. */
    public static void write(Path target, Map<String, String> metadata, List<Entry> tensors, BodyFiller body,
                             List<FileSnapshot> inputs) throws IOException {
        try (AtomicMappedFile.Prepared prepared = prepare(target, metadata, tensors, body, inputs)) {
            prepared.commit();
        }
    }

    /**
     * Writes the file complete beside {@code target} without renaming it into place yet
     * ({@link AtomicMappedFile#prepare}), for a writer that puts several files in place together.
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
