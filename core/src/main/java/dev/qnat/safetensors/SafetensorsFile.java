package dev.qnat.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.exc.StreamReadException;
import dev.qnat.format.DType;
import dev.qnat.format.ElementCount;
import dev.qnat.format.FormatException;
import dev.qnat.format.TensorToWrite;
import dev.qnat.internal.JsonInput;
import dev.qnat.io.FileSnapshot;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A Hugging Face safetensors file, mapped read-only and validated as the reference reader validates
 * it: header at most 100,000,000 bytes and inside the file, valid UTF-8 JSON (an object, no duplicate
 * names), known dtypes, shapes and sizes without overflow, each tensor's byte size equal to dtype size
 * times element count, offsets without gaps or overlaps from 0, and the data ending exactly at the end
 * of the file. Beyond the reference, names must not be empty and shapes have at most
 * {@link TensorToWrite#MAX_RANK} dimensions, as QNAT requires. Anything else is a {@link FormatException}
 * naming the file and the tensor.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** The reference reader's limit on the JSON header. */
    public static final long MAX_HEADER_BYTES = 100_000_000;
    static final String METADATA_KEY = "__metadata__";

    private final Path path;
    private final Arena arena;
    private final Map<String, String> metadata;
    private final TensorList tensors;
    private FileSnapshot snapshot;

    private SafetensorsFile(Path path, Arena arena, Map<String, String> metadata, List<SafetensorsTensor> tensors) {
        this.path = path;
        this.arena = arena;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = TensorList.of(tensors);
    }

    /**
     * Opens, maps and validates a safetensors file.
     *
     * @param path the {@code .safetensors} file, which must be a regular file
     * @return the open file, its tensors readable until it is closed
     * @throws FormatException the file breaks a rule of the format (see the class description)
     * @throws IOException it cannot be read or mapped, or it is a folder, a FIFO, a device or a socket
     */
    public static SafetensorsFile open(Path path) throws IOException, FormatException {
        FileSnapshot snapshot = FileSnapshot.of(path);
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, snapshot.size(), arena);
            SafetensorsFile opened = read(path, arena, file);
            opened.snapshot = snapshot;
            return opened;
        } catch (IOException | RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** Reads a safetensors file held in memory (for fuzzing and tests); {@code name} stands for its path. */
    static SafetensorsFile fromMemory(String name, MemorySegment bytes) throws FormatException {
        return read(Path.of(name), Arena.ofShared(), bytes);
    }

    private static SafetensorsFile read(Path path, Arena arena, MemorySegment file) throws FormatException {
        String where = path.toString();
        long size = file.byteSize();
        if (size < 8) {
            throw new FormatException(where + ": " + size + " bytes, too few for the 8-byte header length");
        }
        long headerLength = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
            throw new FormatException(where + ": header length " + Long.toUnsignedString(headerLength)
                    + " at offset 0 is over the limit of " + MAX_HEADER_BYTES + " bytes");
        }
        if (8 + headerLength > size) {
            throw new FormatException(where + ": header length " + headerLength + " at offset 0 runs past the end of the "
                    + size + "-byte file");
        }
        byte[] header = file.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
        Map<String, String> metadata = new LinkedHashMap<>();
        List<RawEntry> entries = new ArrayList<>();
        parseHeader(where, header, metadata, entries);

        long dataStart = 8 + headerLength;
        List<RawEntry> byOffset = new ArrayList<>(entries);
        byOffset.sort(Comparator.comparingLong((RawEntry e) -> e.begin).thenComparingLong(e -> e.end));
        long expected = 0;
        for (RawEntry e : byOffset) {
            if (e.begin != expected) {
                throw new FormatException(where + ": tensor '" + e.name + "' data_offsets [" + e.begin + ", " + e.end + "]: "
                        + (e.begin < expected ? "overlaps the data before it, which ends at " : "leaves a gap, expected to begin at ")
                        + expected);
            }
            if (e.end < e.begin) {
                throw new FormatException(where + ": tensor '" + e.name + "' data_offsets [" + e.begin + ", " + e.end
                        + "] end before they begin");
            }
            long bytes = e.dtype.sizeOf(e.count);
            if (bytes < 0) {
                throw new FormatException(where + ": tensor '" + e.name + "': " + e.count + " elements of " + e.dtype
                        + (e.dtype.bits() % 8 == 0 ? " are too many" : " do not fill whole bytes"));
            }
            if (e.end - e.begin != bytes) {
                throw new FormatException(where + ": tensor '" + e.name + "' holds " + (e.end - e.begin) + " bytes, its shape "
                        + Arrays.toString(e.shape) + " of " + e.dtype + " needs " + bytes);
            }
            expected = e.end;
        }
        if (dataStart + expected != size) {
            throw new FormatException(where + ": the tensors' data ends at offset " + (dataStart + expected)
                    + " but the file has " + size + " bytes");
        }
        List<SafetensorsTensor> tensors = new ArrayList<>();
        for (RawEntry e : entries) {
            tensors.add(new SafetensorsTensor(e.name, e.dtype, e.shape,
                    file.asSlice(dataStart + e.begin, e.end - e.begin).asReadOnly()));
        }
        return new SafetensorsFile(path, arena, metadata, tensors);
    }

    private static final class RawEntry {
        String name;
        DType dtype;
        long[] shape;
        long count;
        long begin = -1;
        long end = -1;
    }

    private static void parseHeader(String where, byte[] header, Map<String, String> metadata, List<RawEntry> entries)
            throws FormatException {
        try (JsonParser json = JsonInput.parser(where + ": the header", header)) {
            if (json.nextToken() != JsonToken.START_OBJECT) {
                throw new FormatException(where + ": the header is not a JSON object");
            }
            while (json.nextToken() == JsonToken.FIELD_NAME) {
                String name = json.currentName();
                if (name.equals(METADATA_KEY)) {
                    JsonInput.readStringMap(where + ": " + METADATA_KEY, "value of", json, json.nextToken(), metadata);
                } else if (name.isEmpty()) {
                    throw new FormatException(where + ": a tensor has an empty name");
                } else {
                    entries.add(readEntry(where, json, name));
                }
            }
            if (json.nextToken() != null) {
                throw new FormatException(where + ": bytes after the header's JSON object");
            }
        } catch (FormatException e) {
            throw e; // says what and where already; the catch of IOException below would wrap it
        } catch (StreamReadException e) {
            throw new FormatException(where + ": the header is not valid JSON: " + e.getOriginalMessage()
                    + " (at character " + e.getLocation().getCharOffset() + " of the header)", e);
        } catch (IOException e) {
            throw new FormatException(where + ": the header cannot be read: " + e.getMessage(), e);
        }
    }

    private static RawEntry readEntry(String where, JsonParser json, String name) throws IOException, FormatException {
        String tensor = where + ": tensor '" + name + "'";
        if (json.nextToken() != JsonToken.START_OBJECT) {
            throw new FormatException(tensor + " is not described by an object");
        }
        RawEntry e = new RawEntry();
        e.name = name;
        while (json.nextToken() == JsonToken.FIELD_NAME) {
            String field = json.currentName();
            JsonToken value = json.nextToken();
            switch (field) {
                case "dtype" -> {
                    if (value != JsonToken.VALUE_STRING) {
                        throw new FormatException(tensor + ": dtype is not a string");
                    }
                    String dtype = json.getText();
                    e.dtype = DType.ofName(dtype).orElseThrow(() -> new FormatException(tensor + ": unknown dtype '"
                            + dtype + "'"));
                }
                case "shape" -> {
                    e.shape = longs(tensor + " shape", json, value, TensorToWrite.MAX_RANK);
                    e.count = 1;
                    for (long dim : e.shape) {
                        e.count = ElementCount.times(e.count, dim);
                        if (e.count < 0) {
                            throw new FormatException(tensor + ": shape " + Arrays.toString(e.shape) + " has too many elements");
                        }
                    }
                }
                case "data_offsets" -> {
                    long[] offsets = longs(tensor + " data_offsets", json, value, 2);
                    if (offsets.length != 2) {
                        throw new FormatException(tensor + " data_offsets has " + offsets.length + " entries, expected 2");
                    }
                    e.begin = offsets[0];
                    e.end = offsets[1];
                }
                default -> json.skipChildren(); // unknown fields are ignored, as by the reference reader
            }
        }
        if (e.dtype == null || e.shape == null || e.begin < 0) {
            throw new FormatException(tensor + " lacks " + (e.dtype == null ? "dtype" : e.shape == null ? "shape"
                    : "data_offsets"));
        }
        return e;
    }

    /** An array of at most {@code maxLength} non-negative integers below 2^63. */
    private static long[] longs(String what, JsonParser json, JsonToken start, int maxLength)
            throws IOException, FormatException {
        if (start != JsonToken.START_ARRAY) {
            throw new FormatException(what + " is not an array");
        }
        List<Long> values = new ArrayList<>();
        JsonToken token;
        while ((token = json.nextToken()) != JsonToken.END_ARRAY) {
            if (token != JsonToken.VALUE_NUMBER_INT || json.getNumberType() == JsonParser.NumberType.BIG_INTEGER
                    || json.getLongValue() < 0) {
                throw new FormatException(what + " holds " + json.getText() + ", not an integer from 0 to 2^63 - 1");
            }
            if (values.size() == maxLength) {
                throw new FormatException(what + " has more than " + maxLength + " entries");
            }
            values.add(json.getLongValue());
        }
        return values.stream().mapToLong(Long::longValue).toArray();
    }

    /**
     * The file's path, as given to {@link #open}; the name it is known by for one read from memory.
     *
     * @return the path that messages about this file name
     */
    public Path path() {
        return path;
    }

    /**
     * The {@code __metadata__} strings, in stored order.
     *
     * @return an unmodifiable map; empty when the header has no {@code __metadata__}
     */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * The tensors in the order of the header.
     *
     * @return an unmodifiable list of the tensors, whose data is readable while this file is open
     */
    public List<SafetensorsTensor> tensors() {
        return tensors.list();
    }

    /**
     * Looks a tensor up by name.
     *
     * @param name the tensor's name as in the header
     * @return the tensor, or empty when the file holds none of that name
     */
    public Optional<SafetensorsTensor> tensor(String name) {
        return tensors.find(name);
    }

    /**
     * The file as it was opened (empty for one read from memory): writers check it did not change.
     *
     * @return the snapshot taken before the file was mapped, or empty for one read from memory
     */
    public Optional<FileSnapshot> snapshot() {
        return Optional.ofNullable(snapshot);
    }

    /** Unmaps the file; its tensors' data cannot be read after this. */
    @Override
    public void close() {
        arena.close();
    }
}
