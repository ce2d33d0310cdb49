package dev.qnat.format;

import dev.qnat.io.Crc32c;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.Nf4;
import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.IntStream;

/**
 * Where every part of a QNAT v2 file goes, computed from the tensor descriptions alone before a byte
 * is written (src/spec/qnat-v2.md). Section lengths follow from shape, dtype and encoding; offsets
 * from the lengths.
 */
final class QnatLayout {
    static final byte[] MAGIC = {'Q', 'N', 'A', 'T'};
    static final int VERSION = 2;
    static final int FIXED_HEADER_SIZE = 128;
    static final int ENTRY_SIZE = 160;
    static final int SECTIONS = 4;
    static final int ALIGNMENT = 64;
    static final int DATA = 0;
    static final int SCALES = 1;
    static final int NESTED_SCALES = 2;
    static final int TABLE = 3;

    final byte[] metadata;
    final long tableOffset;
    final long indexOffset;
    final long stringsOffset;
    final long stringsLength;
    final long headerLength;
    final long fileLength;
    /** Per tensor, relative to the strings part. */
    final long[] nameOffsets;
    final long[] dimsOffsets;
    final byte[][] names;
    /** [tensor][section]: absolute offset and length; unused sections have length -1 here, 0 in the file. */
    final long[][] sectionOffsets;
    final long[][] sectionLengths;
    /** Entry numbers in name order. */
    final int[] nameIndex;

    QnatLayout(Map<String, String> metadata, List<TensorToWrite> tensors) {
        this.metadata = encodeMetadata(metadata);
        int count = tensors.size();
        names = new byte[count][];
        nameOffsets = new long[count];
        dimsOffsets = new long[count];
        long strings = 0;
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < count; i++) {
            TensorToWrite tensor = tensors.get(i);
            if (!seen.add(tensor.name())) {
                throw new IllegalArgumentException("two tensors are named '" + tensor.name() + "'");
            }
            names[i] = tensor.name().getBytes(StandardCharsets.UTF_8);
            nameOffsets[i] = strings;
            dimsOffsets[i] = align(strings + names[i].length, 8);
            strings = dimsOffsets[i] + 8L * tensor.shape().length;
        }
        tableOffset = align(FIXED_HEADER_SIZE + this.metadata.length, 8);
        indexOffset = tableOffset + (long) ENTRY_SIZE * count;
        stringsOffset = align(indexOffset + 4L * count, 8);
        stringsLength = strings;
        headerLength = align(stringsOffset + stringsLength, ALIGNMENT);

        sectionOffsets = new long[count][SECTIONS];
        sectionLengths = new long[count][SECTIONS];
        long position = headerLength;
        for (int i = 0; i < count; i++) {
            TensorToWrite tensor = tensors.get(i);
            long[] lengths = sectionLengths(tensor.elementCount(), tensor.dtype(), tensor.encoding(), tensor.blockSize(),
                    tensor.doubleQuant());
            for (int s = 0; s < SECTIONS; s++) {
                sectionLengths[i][s] = lengths[s];
                if (lengths[s] >= 0) {
                    sectionOffsets[i][s] = position;
                    position = align(position + lengths[s], ALIGNMENT);
                }
            }
        }
        fileLength = position;
        nameIndex = IntStream.range(0, count).boxed()
                .sorted(Comparator.comparing(i -> names[i], Arrays::compareUnsigned))
                .mapToInt(Integer::intValue).toArray();
    }

    /** Where tensor {@code t}'s part of the file starts: its data section. */
    long tensorStart(int t) {
        return sectionOffsets[t][DATA];
    }

    /** Where tensor {@code t}'s part of the file, its sections and the gaps after them, ends. */
    long tensorEnd(int t) {
        return t + 1 < sectionOffsets.length ? tensorStart(t + 1) : fileLength;
    }

    /** Section lengths of a tensor as the format prescribes; -1 for an unused section. */
    static long[] sectionLengths(long count, DType dtype, Encoding encoding, int blockSize, boolean doubleQuant) {
        if (encoding == Encoding.RAW) {
            return new long[] {dtype.sizeOf(count), -1, -1, -1};
        }
        long blocks = Nf4.blockCount(count, blockSize);
        if (!doubleQuant) {
            return new long[] {Nf4.packedSize(count), 4 * blocks, -1, -1};
        }
        return new long[] {Nf4.packedSize(count), blocks, 4 * DoubleQuantization.groupCount(blocks),
            4L * DoubleQuantization.TABLE_SIZE};
    }

    /** The header's CRC-32C: bytes {@code [0, headerLength)} with the header_crc32c field as four zero bytes. */
    static int headerCrc(MemorySegment file, long headerLength) {
        QnatField crc = QnatField.HEADER_CRC32C;
        long after = crc.offset() + crc.size();
        return Crc32c.of(file.asSlice(0, crc.offset()), MemorySegment.ofArray(new byte[crc.size()]),
                file.asSlice(after, headerLength - after));
    }

    static long align(long value, int alignment) {
        return Math.addExact(value, alignment - 1) / alignment * alignment;
    }

    private static byte[] encodeMetadata(Map<String, String> metadata) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(u32(metadata.size()));
        for (Map.Entry<String, String> entry : metadata.entrySet()) {
            if (entry.getKey().isEmpty()) {
                throw new IllegalArgumentException("metadata keys may not be empty");
            }
            byte[] key = entry.getKey().getBytes(StandardCharsets.UTF_8);
            byte[] value = entry.getValue().getBytes(StandardCharsets.UTF_8);
            out.writeBytes(u32(key.length));
            out.writeBytes(key);
            out.writeBytes(u32(value.length));
            out.writeBytes(value);
        }
        return out.toByteArray();
    }

    private static byte[] u32(int value) {
        return ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(value).array();
    }
}
