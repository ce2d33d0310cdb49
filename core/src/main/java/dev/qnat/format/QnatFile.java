package dev.qnat.format;

import static dev.qnat.format.QnatField.BLOCK_SIZE;
import static dev.qnat.format.QnatField.DIMS_OFFSET;
import static dev.qnat.format.QnatField.DQ_OFFSET;
import static dev.qnat.format.QnatField.DTYPE;
import static dev.qnat.format.QnatField.ELEMENT_COUNT;
import static dev.qnat.format.QnatField.ENCODING;
import static dev.qnat.format.QnatField.ENTRY_RESERVED;
import static dev.qnat.format.QnatField.ENTRY_RESERVED_BYTE;
import static dev.qnat.format.QnatField.FILE_LENGTH;
import static dev.qnat.format.QnatField.FLAGS;
import static dev.qnat.format.QnatField.HEADER_CRC32C;
import static dev.qnat.format.QnatField.HEADER_LENGTH;
import static dev.qnat.format.QnatField.HEADER_RESERVED;
import static dev.qnat.format.QnatField.INDEX_LENGTH;
import static dev.qnat.format.QnatField.INDEX_OFFSET;
import static dev.qnat.format.QnatField.METADATA_LENGTH;
import static dev.qnat.format.QnatField.METADATA_OFFSET;
import static dev.qnat.format.QnatField.NAME_LENGTH;
import static dev.qnat.format.QnatField.NAME_OFFSET;
import static dev.qnat.format.QnatField.NESTED_BLOCK_SIZE;
import static dev.qnat.format.QnatField.RANK;
import static dev.qnat.format.QnatField.SCALES;
import static dev.qnat.format.QnatField.SECTION_CRC32C;
import static dev.qnat.format.QnatField.SECTION_LENGTH;
import static dev.qnat.format.QnatField.SECTION_OFFSET;
import static dev.qnat.format.QnatField.SECTION_RESERVED;
import static dev.qnat.format.QnatField.STRINGS_LENGTH;
import static dev.qnat.format.QnatField.STRINGS_OFFSET;
import static dev.qnat.format.QnatField.TABLE_LENGTH;
import static dev.qnat.format.QnatField.TABLE_OFFSET;
import static dev.qnat.format.QnatField.TENSOR_COUNT;
import static dev.qnat.format.QnatLayout.ALIGNMENT;
import static dev.qnat.format.QnatLayout.ENTRY_SIZE;
import static dev.qnat.format.QnatLayout.FIXED_HEADER_SIZE;
import static dev.qnat.format.QnatLayout.SECTIONS;

import dev.qnat.io.FileSnapshot;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.Nf4;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * An open QNAT file, v2 or v1, mapped read-only and validated in full before use (src/spec/qnat-v2.md):
 * a malformed file is refused with a {@link FormatException} naming the field, its offset and what
 * was expected. Tensors are zero-copy views of the mapping. Safe for concurrent readers; {@link #close()}
 * unmaps, after which reads fail with {@link IllegalStateException}, also in threads reading at that moment.
 */
public final class QnatFile implements AutoCloseable {
    private final Path path;
    private final Arena arena;
    private final MemorySegment file;
    private final boolean checkOnFirstRead;
    private final int version;
    private final Map<String, String> metadata;
    private final List<QnatTensor> tensors;
    private final int[] nameIndex;
    private final long v1OffsetError;
    private FileSnapshot snapshot;

    private QnatFile(Path path, Arena arena, MemorySegment file, boolean checkOnFirstRead, HeaderBytes bytes)
            throws FormatException {
        this.path = path;
        this.arena = arena;
        this.file = file;
        this.checkOnFirstRead = checkOnFirstRead;
        if (file.byteSize() < 8) {
            throw bytes.error(QnatField.MAGIC, "the file has " + file.byteSize() + " bytes, too few for a QNAT header");
        }
        if (!isQnat(file)) {
            throw bytes.error(QnatField.MAGIC, "not a QNAT file (the first bytes are not 'QNAT')");
        }
        version = bytes.u32In(QnatField.VERSION, 1, 2);
        List<QnatTensor> list = new ArrayList<>();
        Map<String, String> meta = new LinkedHashMap<>();
        if (version == 2) {
            nameIndex = readV2(bytes, meta, list);
            v1OffsetError = 0;
        } else {
            QnatV1.Contents v1 = QnatV1.read(this, bytes, meta, list);
            nameIndex = v1.nameIndex();
            v1OffsetError = v1.offsetError();
        }
        metadata = Collections.unmodifiableMap(meta);
        tensors = List.copyOf(list);
    }

    /**
     * Opens, maps and validates a QNAT file; tensor CRCs are checked on each tensor's first read.
     *
     * @param path the file, v2 or v1; symbolic links are followed
     * @return the open file, to be closed by the caller
     * @throws FormatException if the file is not a well-formed QNAT file (the message names the field)
     * @throws IOException if it cannot be read or mapped, or is not a regular file
     *         ({@link FileSnapshot.NotRegularFileException})
     */
    public static QnatFile open(Path path) throws IOException, FormatException {
        return open(path, true);
    }

    /**
     * Opens, maps and validates a QNAT file.
     *
     * @param path the file, v2 or v1; symbolic links are followed
     * @param checkOnFirstRead whether each tensor's CRCs are checked the first time it is read
     * @return the open file, to be closed by the caller
     * @throws FormatException if the file is not a well-formed QNAT file (the message names the field)
     * @throws IOException if it cannot be read or mapped, or is not a regular file
     *         ({@link FileSnapshot.NotRegularFileException})
     */
    public static QnatFile open(Path path, boolean checkOnFirstRead) throws IOException, FormatException {
        FileSnapshot snapshot = FileSnapshot.of(path);
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            MemorySegment file = channel.map(FileChannel.MapMode.READ_ONLY, 0, snapshot.size(), arena);
            QnatFile opened = new QnatFile(path, arena, file, checkOnFirstRead, new HeaderBytes(file, path.toString()));
            opened.snapshot = snapshot;
            return opened;
        } catch (IOException | RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Whether {@code path} is a regular file that starts with the QNAT magic (v1 or v2; not checked further).
     *
     * @param path the file to look at; symbolic links are followed
     * @return true if it is a regular file whose first bytes are the magic; false for a missing file or a folder
     * @throws IOException if it is a regular file that cannot be opened or read
     */
    public static boolean isQnat(Path path) throws IOException {
        if (!Files.isRegularFile(path)) {
            return false;
        }
        try (InputStream in = Files.newInputStream(path)) {
            return Arrays.equals(in.readNBytes(QnatLayout.MAGIC.length), QnatLayout.MAGIC);
        }
    }

    private static boolean isQnat(MemorySegment file) {
        return Arrays.equals(file.asSlice(0, QnatLayout.MAGIC.length).toArray(ValueLayout.JAVA_BYTE), QnatLayout.MAGIC);
    }

    /** Reads a QNAT file held in memory (for fuzzing and tests); {@code name} stands for its path. */
    static QnatFile fromMemory(String name, MemorySegment bytes, boolean checkOnFirstRead) throws FormatException {
        return new QnatFile(Path.of(name), Arena.ofShared(), bytes, checkOnFirstRead, new HeaderBytes(bytes, name));
    }

    /**
     * The path the file was opened with.
     *
     * @return the path as given to {@link #open(Path)}, not resolved (for a file read from memory, its name)
     */
    public Path path() {
        return path;
    }

    /**
     * The file as it was opened (empty for one read from memory): writers check it did not change.
     *
     * @return its size, modification time and identity when opened, or empty for a file read from memory
     */
    public Optional<FileSnapshot> snapshot() {
        return Optional.ofNullable(snapshot);
    }

    String fileName() {
        return path.toString();
    }

    boolean checksOnFirstRead() {
        return checkOnFirstRead;
    }

    MemorySegment mapping() {
        return file;
    }

    /**
     * 2 for files qnat writes, 1 for qlora-rs files.
     *
     * @return the format version, 1 or 2
     */
    public int version() {
        return version;
    }

    /**
     * Size of the file in bytes.
     *
     * @return the byte size of the mapping, the whole file as it was opened
     */
    public long fileSize() {
        return file.byteSize();
    }

    /**
     * The metadata, in stored order (for v1: model_name, model_type, compute_dtype).
     *
     * @return an unmodifiable map of key to value, iterating in stored order; empty if there is none
     */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * The tensors, in stored order.
     *
     * @return an unmodifiable list of the tensors, in the order of the tensor table
     */
    public List<QnatTensor> tensors() {
        return tensors;
    }

    /**
     * The tensor of that name: a binary search over the name index.
     *
     * @param name the tensor's exact name (compared as UTF-8 bytes)
     * @return the tensor, or empty if the file has none of that name
     */
    public Optional<QnatTensor> tensor(String name) {
        byte[] key = name.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        int low = 0;
        int high = nameIndex.length - 1;
        while (low <= high) {
            int middle = (low + high) >>> 1;
            QnatTensor candidate = tensors.get(nameIndex[middle]);
            int order = Arrays.compareUnsigned(candidate.name().getBytes(java.nio.charset.StandardCharsets.UTF_8), key);
            if (order == 0) {
                return Optional.of(candidate);
            }
            if (order < 0) {
                low = middle + 1;
            } else {
                high = middle - 1;
            }
        }
        return Optional.empty();
    }

    /**
     * For v1 files: how many bytes each stored data offset is too large by (the seed writer's bug),
     * {@code 23 - len(model_name) - len(model_type)}; empty for v2.
     *
     * @return the error in bytes (which readers subtract), or empty for a v2 file
     */
    public OptionalLong v1OffsetError() {
        return version == 1 ? OptionalLong.of(v1OffsetError) : OptionalLong.empty();
    }

    /**
     * Checks every tensor's CRCs (v2; v1 has none, its structure was checked on open).
     *
     * @throws FormatException if a section of a tensor fails its CRC-32C; the first such one is named
     */
    public void verify() throws FormatException {
        for (QnatTensor tensor : tensors) {
            tensor.verify();
        }
    }

    /** Unmaps the file. Reads in other threads then fail with IllegalStateException. */
    @Override
    public void close() {
        arena.close();
    }

    // ---- v2 ---------------------------------------------------------------------------------------

    private int[] readV2(HeaderBytes bytes, Map<String, String> meta, List<QnatTensor> list) throws FormatException {
        long size = bytes.size();
        if (size < FIXED_HEADER_SIZE) {
            throw bytes.error("fixed header", 0, "the file has " + size + " bytes, the v2 header alone " + FIXED_HEADER_SIZE);
        }
        bytes.u32In(FLAGS, 0, 0);
        long fileLength = bytes.get(FILE_LENGTH);
        if (fileLength != size) {
            throw bytes.error(FILE_LENGTH, "says " + fileLength + " bytes, the file has " + size
                    + (fileLength > size ? " (truncated?)" : ""));
        }
        long headerLength = bytes.get(HEADER_LENGTH);
        if (headerLength < FIXED_HEADER_SIZE || headerLength > size || headerLength % ALIGNMENT != 0) {
            throw bytes.error(HEADER_LENGTH, "value " + headerLength + ", expected a multiple of " + ALIGNMENT
                    + " from " + FIXED_HEADER_SIZE + " to the file size " + size);
        }
        int storedCrc = (int) bytes.get(HEADER_CRC32C);
        int actualCrc = QnatLayout.headerCrc(file, headerLength);
        if (storedCrc != actualCrc) {
            throw bytes.error(HEADER_CRC32C, "stored 0x" + Integer.toHexString(storedCrc) + ", the header's is 0x"
                    + Integer.toHexString(actualCrc));
        }
        bytes.zeros(HEADER_RESERVED);
        long metadataOffset = bytes.get(METADATA_OFFSET);
        if (metadataOffset != FIXED_HEADER_SIZE) {
            throw bytes.error(METADATA_OFFSET, "value " + metadataOffset + ", expected " + FIXED_HEADER_SIZE);
        }
        long metadataEnd = part(bytes, METADATA_LENGTH, metadataOffset, headerLength);
        long count = bytes.get(TENSOR_COUNT);
        long entrySize = bytes.get(QnatField.ENTRY_SIZE);
        if (entrySize < ENTRY_SIZE || entrySize % 8 != 0) {
            throw bytes.error(QnatField.ENTRY_SIZE, "value " + entrySize + ", expected a multiple of 8, at least "
                    + ENTRY_SIZE);
        }
        long tableOffset = partStart(bytes, TABLE_OFFSET, metadataEnd);
        long tableEnd = part(bytes, TABLE_LENGTH, tableOffset, headerLength);
        if (tableEnd - tableOffset != count * entrySize) {
            throw bytes.error(TABLE_LENGTH, "value " + (tableEnd - tableOffset) + ", expected tensor_count " + count
                    + " x entry_size " + entrySize + " = " + count * entrySize);
        }
        long indexOffset = partStart(bytes, INDEX_OFFSET, tableEnd);
        long indexEnd = part(bytes, INDEX_LENGTH, indexOffset, headerLength);
        if (indexEnd - indexOffset != 4 * count) {
            throw bytes.error(INDEX_LENGTH, "value " + (indexEnd - indexOffset) + ", expected 4 x " + count);
        }
        long stringsOffset = partStart(bytes, STRINGS_OFFSET, indexEnd);
        long stringsEnd = part(bytes, STRINGS_LENGTH, stringsOffset, headerLength);

        readMetadata(bytes, meta, metadataOffset, metadataEnd);
        Strings strings = new Strings(stringsOffset, stringsEnd);
        List<long[]> used = new ArrayList<>();
        for (int t = 0; t < count; t++) {
            list.add(readEntry(bytes, t, tableOffset + t * entrySize, strings, headerLength, used));
        }
        checkNoOverlap(bytes, used, list);
        return readIndex(bytes, list, indexOffset);
    }

    /** A part's start: 8-aligned, not before the previous part's end. */
    private static long partStart(HeaderBytes bytes, QnatField offsetField, long previousEnd) throws FormatException {
        long offset = bytes.get(offsetField);
        if (offset < previousEnd || offset % 8 != 0) {
            throw bytes.error(offsetField, "value " + offset + ", expected a multiple of 8 at or after "
                    + previousEnd + ", where the previous part ends");
        }
        return offset;
    }

    /** A part's end from its length field; within the header. */
    private static long part(HeaderBytes bytes, QnatField lengthField, long offset, long headerLength)
            throws FormatException {
        long length = bytes.get(lengthField);
        if (length > headerLength - offset) {
            throw bytes.error(lengthField, "part [" + offset + ", " + offset + " + " + length
                    + ") runs past the header's end at " + headerLength);
        }
        return offset + length;
    }

    private static void readMetadata(HeaderBytes bytes, Map<String, String> meta, long offset, long end)
            throws FormatException {
        long count = bytes.u32("metadata count", offset);
        if (count > (end - offset - 4) / 8) {
            throw bytes.error("metadata count", offset, count + " entries cannot fit in " + (end - offset) + " bytes");
        }
        long position = offset + 4;
        for (long i = 0; i < count; i++) {
            String[] pair = new String[2];
            for (int k = 0; k < 2; k++) {
                String field = "metadata entry " + i + (k == 0 ? " key" : " value");
                long length = bytes.u32(field + " length", position);
                if (position + 4 > end || length > end - position - 4) {
                    throw bytes.error(field, position, "length " + length + " runs past the metadata's end at " + end);
                }
                pair[k] = bytes.utf8(field, position + 4, length);
                position += 4 + length;
            }
            if (pair[0].isEmpty() || meta.putIfAbsent(pair[0], pair[1]) != null) {
                throw bytes.error("metadata entry " + i + " key", position, pair[0].isEmpty() ? "empty key"
                        : "key '" + pair[0] + "' appears twice");
            }
        }
        if (position != end) {
            throw bytes.error("metadata", position, (end - position) + " bytes left over after " + count + " entries");
        }
    }

    /** The strings part: {@code [offset, end)}; names and dims offsets count from its start. */
    private record Strings(long offset, long end) {
        long length() {
            return end - offset;
        }
    }

    private QnatTensor readEntry(HeaderBytes bytes, int t, long entry, Strings strings, long headerLength,
                                 List<long[]> used) throws FormatException {
        String name = readName(bytes, "tensor " + t, entry, strings);
        String where = "tensor " + t + " ('" + name + "')";
        Dims dims = readDims(bytes, where, entry, strings);
        long[] shape = dims.shape();
        long product = dims.elementCount();
        int dtypeCode = (int) bytes.get(where, DTYPE, entry);
        DType dtype = DType.ofCode(dtypeCode).orElseThrow(() -> bytes.error("tensor " + t, DTYPE, entry,
                "unknown dtype code " + dtypeCode));
        TensorStorage storage = readStorage(bytes, where, entry, dtype);
        bytes.zeros(where, ENTRY_RESERVED, entry);
        if (dtype.sizeOf(product) < 0) {
            throw bytes.error(where, ELEMENT_COUNT, entry, product + " elements of " + dtype
                    + " do not fill whole bytes");
        }
        TensorSections sections = readSections(bytes, t, where, entry, product, dtype, storage, headerLength, used);
        return new QnatTensor(this, name, shape, product, dtype, storage, sections);
    }

    /** The four section descriptors: used ones exactly as long as the format says, aligned, inside the file. */
    private TensorSections readSections(HeaderBytes bytes, int t, String where, long entry, long product, DType dtype,
                                        TensorStorage storage, long headerLength, List<long[]> used)
            throws FormatException {
        long[] expected = QnatLayout.sectionLengths(product, dtype, storage.encoding(), storage.blockSize(),
                storage.doubleQuant());
        MemorySegment[] sections = new MemorySegment[SECTIONS];
        long[] offsets = new long[SECTIONS];
        int[] crcs = new int[SECTIONS];
        for (int s = 0; s < SECTIONS; s++) {
            long descriptor = entry + QnatField.sectionDescriptor(s);
            String section = where + " section " + s;
            long offset = bytes.get(section, SECTION_OFFSET, descriptor);
            long length = bytes.get(section, SECTION_LENGTH, descriptor);
            crcs[s] = (int) bytes.get(section, SECTION_CRC32C, descriptor);
            bytes.zeros(section, SECTION_RESERVED, descriptor);
            if (expected[s] < 0) {
                if (offset != 0 || length != 0 || crcs[s] != 0) {
                    throw bytes.error(section, descriptor, "is unused for this tensor and must be all zeros");
                }
                continue;
            }
            if (length != expected[s]) {
                throw bytes.error(section, SECTION_LENGTH, descriptor, "value " + length + ", expected " + expected[s]
                        + " for " + product + " elements " + (storage.encoding() == Encoding.NF4 ? "at block "
                        + storage.blockSize() + " with " + storage.scales() : "of " + dtype));
            }
            if (offset % ALIGNMENT != 0 || offset < headerLength || offset > file.byteSize() - length) {
                throw bytes.error(section, SECTION_OFFSET, descriptor, "value " + offset + ": a section of " + length
                        + " bytes must start at a multiple of " + ALIGNMENT + " in [" + headerLength + ", "
                        + file.byteSize() + "]");
            }
            sections[s] = file.asSlice(offset, length).asReadOnly();
            offsets[s] = offset;
            if (length > 0) {
                used.add(new long[] {offset, length, t, s});
            }
        }
        return new TensorSections(sections, offsets, crcs, null);
    }

    private static String readName(HeaderBytes bytes, String where, long entry, Strings strings)
            throws FormatException {
        long nameOffset = bytes.get(where, NAME_OFFSET, entry);
        long nameLength = bytes.u32In(where, NAME_LENGTH, entry, 1, TensorToWrite.MAX_NAME_BYTES);
        if (nameOffset > strings.length() - nameLength) {
            throw bytes.error(where + " name", entry, "bytes [" + nameOffset + ", +" + nameLength
                    + ") run past the strings part of " + strings.length() + " bytes");
        }
        return bytes.utf8(where + " name", strings.offset() + nameOffset, nameLength);
    }

    /** A tensor's shape and its element count, the product of the dimensions. */
    private record Dims(long[] shape, long elementCount) {}

    /** The dimensions, and element_count checked against their product. */
    private static Dims readDims(HeaderBytes bytes, String where, long entry, Strings strings)
            throws FormatException {
        int rank = bytes.u32In(where, RANK, entry, 0, TensorToWrite.MAX_RANK);
        long dimsOffset = bytes.get(where, DIMS_OFFSET, entry);
        if (dimsOffset % 8 != 0 || dimsOffset > strings.length() - 8L * rank) {
            throw bytes.error(where, DIMS_OFFSET, entry, "value " + dimsOffset + ": " + rank
                    + " dimensions must lie 8-aligned inside the strings part of " + strings.length() + " bytes");
        }
        long[] shape = new long[rank];
        long product = 1;
        for (int d = 0; d < rank; d++) {
            long dimField = strings.offset() + dimsOffset + 8L * d;
            shape[d] = bytes.u64(where + " dimension " + d, dimField);
            product = ElementCount.times(product, shape[d]);
            if (product < 0) {
                throw bytes.error(where + " dimension " + d, dimField, "shape " + Arrays.toString(Arrays.copyOf(shape, d + 1))
                        + " has 2^62 elements or more");
            }
        }
        long count = bytes.get(where, ELEMENT_COUNT, entry);
        if (count != product) {
            throw bytes.error(where, ELEMENT_COUNT, entry, "value " + count + ", the shape "
                    + Arrays.toString(shape) + " has " + product);
        }
        return new Dims(shape, product);
    }

    private static TensorStorage readStorage(HeaderBytes bytes, String where, long entry, DType dtype)
            throws FormatException {
        int encodingCode = (int) bytes.get(where, ENCODING, entry);
        int scalesCode = (int) bytes.get(where, SCALES, entry);
        bytes.zeros(where, ENTRY_RESERVED_BYTE, entry);
        int blockSize = (int) bytes.get(where, BLOCK_SIZE, entry);
        int nested = (int) bytes.get(where, NESTED_BLOCK_SIZE, entry);
        float dqOffset = bytes.f32(where, DQ_OFFSET, entry);
        Encoding encoding;
        ScaleStorage scales;
        if (encodingCode == 0 && scalesCode == 0 && blockSize == 0) {
            encoding = Encoding.RAW;
            scales = ScaleStorage.NONE;
        } else if (encodingCode == 1 && (scalesCode == 1 || scalesCode == 2)) {
            encoding = Encoding.NF4;
            scales = scalesCode == 1 ? ScaleStorage.ABSMAX_F32 : ScaleStorage.DOUBLE_QUANT;
            if (dtype.floatType().isEmpty()) {
                throw bytes.error(where, DTYPE, entry, dtype + " for an NF4 tensor, expected F32, F16 or BF16");
            }
            if (!Nf4.isBlockSize(Integer.toUnsignedLong(blockSize))) {
                throw bytes.error(where, BLOCK_SIZE, entry, "value " + Integer.toUnsignedString(blockSize)
                        + ", expected an even number from 2 to 2^20");
            }
        } else {
            throw bytes.error(where, ENCODING, entry, "encoding " + encodingCode + " with scales " + scalesCode
                    + " and block size " + Integer.toUnsignedString(blockSize) + " is not a valid combination");
        }
        boolean doubleQuant = scales == ScaleStorage.DOUBLE_QUANT;
        if (nested != (doubleQuant ? DoubleQuantization.GROUP_SIZE : 0)) {
            throw bytes.error(where, NESTED_BLOCK_SIZE, entry, "value " + Integer.toUnsignedString(nested)
                    + ", expected " + (doubleQuant ? DoubleQuantization.GROUP_SIZE : 0));
        }
        if (doubleQuant ? !Float.isFinite(dqOffset) : Float.floatToRawIntBits(dqOffset) != 0) {
            throw bytes.error(where, DQ_OFFSET, entry, "value " + dqOffset + ", expected "
                    + (doubleQuant ? "a finite number" : "0"));
        }
        return new TensorStorage(encoding, scales, blockSize, dqOffset);
    }

    private static void checkNoOverlap(HeaderBytes bytes, List<long[]> used, List<QnatTensor> list)
            throws FormatException {
        used.sort((a, b) -> Long.compare(a[0], b[0]));
        for (int i = 1; i < used.size(); i++) {
            long[] previous = used.get(i - 1);
            long[] current = used.get(i);
            if (current[0] < previous[0] + previous[1]) {
                throw bytes.error("tensor '" + list.get((int) current[2]).name() + "' section " + current[3], current[0],
                        "overlaps section " + previous[3] + " of tensor '" + list.get((int) previous[2]).name()
                        + "', which ends at " + (previous[0] + previous[1]));
            }
        }
    }

    private static int[] readIndex(HeaderBytes bytes, List<QnatTensor> list, long indexOffset) throws FormatException {
        int count = list.size();
        int[] index = new int[count];
        byte[] previous = null;
        for (int i = 0; i < count; i++) {
            long field = indexOffset + 4L * i;
            index[i] = bytes.u32In("name index entry " + i, field, 0, Math.max(0, count - 1));
            byte[] name = list.get(index[i]).name().getBytes(java.nio.charset.StandardCharsets.UTF_8);
            if (previous != null && Arrays.compareUnsigned(previous, name) >= 0) {
                throw bytes.error("name index entry " + i, field, Arrays.compareUnsigned(previous, name) == 0
                        ? "tensor name '" + list.get(index[i]).name() + "' appears twice"
                        : "names are not in increasing byte order");
            }
            previous = name;
        }
        return index;
    }
}
