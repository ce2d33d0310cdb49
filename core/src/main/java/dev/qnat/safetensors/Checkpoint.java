package dev.qnat.safetensors;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.exc.StreamReadException;
import dev.qnat.format.FormatException;
import dev.qnat.internal.JsonInput;
import dev.qnat.io.FileSnapshot;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A Hugging Face checkpoint read as one: a single {@code .safetensors} file, or a sharded one through
 * its {@code model.safetensors.index.json} ({@code {"metadata": {...}, "weight_map": {name: file}}}),
 * given as the index, or as the folder holding it or a single {@code model.safetensors}. Every shard is
 * validated; the weight map must name each shard's tensors and only those, once.
 */
public final class Checkpoint implements AutoCloseable {
    /** The index file's name, which {@link #open} looks for first in a folder. */
    public static final String INDEX_NAME = "model.safetensors.index.json";
    /** The single file's name, which {@link #open} looks for in a folder without an index. */
    public static final String SINGLE_NAME = "model.safetensors";

    private final Path source;
    private final List<FileSnapshot> files;
    private final List<SafetensorsFile> shards;
    private final Map<String, String> metadata;
    private final TensorList tensors;

    private Checkpoint(Path source, FileSnapshot index, List<SafetensorsFile> shards, Map<String, String> metadata,
                       List<SafetensorsTensor> tensors) {
        this.source = source;
        this.shards = List.copyOf(shards);
        List<FileSnapshot> all = new ArrayList<>();
        if (index != null) {
            all.add(index);
        }
        shards.forEach(shard -> shard.snapshot().ifPresent(all::add));
        this.files = List.copyOf(all);
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = TensorList.of(tensors);
    }

    /**
     * Opens a .safetensors file, an index .json, or a folder holding either (the index preferred), mapping
     * and validating every shard. Close it to unmap them.
     *
     * @param path a {@code .safetensors} file, an index (a name ending in {@code .json}), or a folder
     *             holding {@value #INDEX_NAME} or {@value #SINGLE_NAME}
     * @return the open checkpoint, its tensors readable until it is closed
     * @throws FormatException a folder holds neither file, a shard or the index is malformed, or the
     *                         weight map disagrees with the shards (or names a file not beside the index)
     * @throws IOException a file cannot be read, or is not a regular file
     */
    public static Checkpoint open(Path path) throws IOException, FormatException {
        if (Files.isDirectory(path)) {
            if (Files.exists(path.resolve(INDEX_NAME))) {
                return openIndex(path.resolve(INDEX_NAME));
            }
            if (Files.exists(path.resolve(SINGLE_NAME))) {
                return openSingle(path.resolve(SINGLE_NAME));
            }
            throw new FormatException(path + ": a folder without " + INDEX_NAME + " or " + SINGLE_NAME);
        }
        return path.getFileName().toString().endsWith(".json") ? openIndex(path) : openSingle(path);
    }

    private static Checkpoint openSingle(Path file) throws IOException, FormatException {
        SafetensorsFile single = SafetensorsFile.open(file);
        return new Checkpoint(file, null, List.of(single), new LinkedHashMap<>(single.metadata()), single.tensors());
    }

    private static Checkpoint openIndex(Path indexFile) throws IOException, FormatException {
        FileSnapshot index = FileSnapshot.of(indexFile);
        Map<String, String> metadata = new LinkedHashMap<>();
        Map<String, String> weightMap = new LinkedHashMap<>();
        readIndex(indexFile, metadata, weightMap);
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        try {
            // Real paths on both sides: "./sharded", "sharded/." or a link name the index the same folder.
            Path folder = index.file().getParent();
            for (String shardName : weightMap.values()) {
                if (!shards.containsKey(shardName)) {
                    Path shard = folder.resolve(shardName).normalize();
                    if (shard.getParent() == null || !shard.getParent().equals(folder)) {
                        throw new FormatException(indexFile + ": weight_map names '" + shardName
                                + "', which is not a file beside the index");
                    }
                    if (!Files.isRegularFile(shard)) {
                        throw new FormatException(indexFile + ": weight_map names shard '" + shardName
                                + "', which does not exist beside the index");
                    }
                    shards.put(shardName, SafetensorsFile.open(shard));
                }
            }
            List<SafetensorsTensor> tensors = new ArrayList<>();
            for (Map.Entry<String, SafetensorsFile> shard : shards.entrySet()) {
                for (SafetensorsTensor tensor : shard.getValue().tensors()) {
                    String mapped = weightMap.get(tensor.name());
                    if (!shard.getKey().equals(mapped)) {
                        throw new FormatException(indexFile + ": tensor '" + tensor.name() + "' is in shard '" + shard.getKey()
                                + "' but the weight_map " + (mapped == null ? "does not name it" : "puts it in '" + mapped + "'"));
                    }
                    tensors.add(tensor);
                }
            }
            for (Map.Entry<String, String> entry : weightMap.entrySet()) {
                if (shards.get(entry.getValue()).tensor(entry.getKey()).isEmpty()) {
                    throw new FormatException(indexFile + ": the weight_map puts tensor '" + entry.getKey() + "' in '"
                            + entry.getValue() + "', which does not hold it");
                }
            }
            return new Checkpoint(indexFile, index, new ArrayList<>(shards.values()), metadata, tensors);
        } catch (IOException | RuntimeException e) {
            shards.values().forEach(SafetensorsFile::close);
            throw e;
        }
    }

    private static void readIndex(Path indexFile, Map<String, String> metadata, Map<String, String> weightMap)
            throws IOException, FormatException {
        long size = Files.size(indexFile);
        if (size > SafetensorsFile.MAX_HEADER_BYTES) {
            throw new FormatException(indexFile + ": " + size + " bytes, over the limit of " + SafetensorsFile.MAX_HEADER_BYTES);
        }
        try (JsonParser json = JsonInput.parser(indexFile.toString(), Files.readAllBytes(indexFile))) {
            if (json.nextToken() != JsonToken.START_OBJECT) {
                throw new FormatException(indexFile + ": not a JSON object");
            }
            while (json.nextToken() == JsonToken.FIELD_NAME) {
                String field = json.currentName();
                JsonToken value = json.nextToken();
                if (field.equals("weight_map")) {
                    JsonInput.readStringMap(indexFile + ": weight_map", "entry", json, value, weightMap);
                } else if (field.equals("metadata") && value == JsonToken.START_OBJECT) {
                    // transformers writes numbers here (total_size); keep every scalar as text
                    while (json.nextToken() == JsonToken.FIELD_NAME) {
                        String key = json.currentName();
                        JsonToken token = json.nextToken();
                        if (token.isScalarValue()) {
                            metadata.put(key, json.getText());
                        } else {
                            json.skipChildren();
                        }
                    }
                } else {
                    json.skipChildren();
                }
            }
        } catch (StreamReadException e) {
            throw new FormatException(indexFile + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (weightMap.isEmpty()) {
            throw new FormatException(indexFile + ": no weight_map, or an empty one");
        }
    }

    /**
     * The file or index this checkpoint was opened from.
     *
     * @return the single {@code .safetensors} file or the index, as found (a folder resolved to the file in it)
     */
    public Path source() {
        return source;
    }

    /**
     * Every file this checkpoint reads, the index included, as it was when opened.
     *
     * @return the index (if any) first, then each shard; the inputs a writer must check and must not overwrite
     */
    public List<FileSnapshot> files() {
        return files;
    }

    /**
     * The metadata: a single file's {@code __metadata__}, or the index's {@code metadata}.
     *
     * @return an unmodifiable map in stored order, the index's numbers kept as text; empty when there is none
     */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * All tensors, shard by shard, each in its shard's header order.
     *
     * @return an unmodifiable list of the tensors, whose data is readable while this checkpoint is open
     */
    public List<SafetensorsTensor> tensors() {
        return tensors.list();
    }

    /**
     * Looks a tensor up by name, in whichever shard holds it.
     *
     * @param name the tensor's name as in the header
     * @return the tensor, or empty when no shard holds one of that name
     */
    public Optional<SafetensorsTensor> tensor(String name) {
        return tensors.find(name);
    }

    /**
     * Total bytes of tensor data.
     *
     * @return the sum of every tensor's byte size over all shards, headers not counted
     */
    public long dataBytes() {
        return tensors.list().stream().mapToLong(t -> t.data().byteSize()).sum();
    }

    /** Unmaps every shard; the tensors' data cannot be read after this. */
    @Override
    public void close() {
        shards.forEach(SafetensorsFile::close);
    }
}
