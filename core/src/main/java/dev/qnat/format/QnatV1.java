package dev.qnat.format;

import dev.qnat.nf4.Nf4;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Reads QNAT v1, the format of qlora-rs's {@code export_native} (src/spec/qnat-v2.md, last section),
 * correcting its data offsets and inferring each tensor's optional parts from their sizes.
 */
final class QnatV1 {
    private static final int FIXED_HEADER_SIZE = 28;
    private static final String[] COMPUTE_DTYPES = {"F32", "F16", "BF16"};

    record Contents(int[] nameIndex, long offsetError) {}

    /** @param field where the header's data_offset is stored; its block_count follows it, the header ends after that */
    private record Header(String name, long[] shape, long count, int blockSize, long storedOffset, long blocks,
                          long field) {
        long end() {
            return field + 12;
        }
    }

    private QnatV1() {}

    static Contents read(QnatFile owner, HeaderBytes bytes, Map<String, String> meta, List<QnatTensor> list)
            throws FormatException {
        bytes.u32In("flags", 8, 0, 0);
        bytes.u64("metadata_size", 12); // always written as 0; any value is tolerated, as nothing uses it
        long tensorCount = bytes.u32("tensor_count", 20);
        bytes.u32("reserved", 24);
        long headersStart = readMetadata(bytes, meta);
        List<Header> headers = readHeaders(bytes, tensorCount, headersStart);
        long headersEnd = headers.isEmpty() ? headersStart : headers.getLast().end();
        long offsetError = 23 - utf8Length(meta.get("model_name")) - utf8Length(meta.get("model_type"));
        readTensors(owner, bytes, headers, headersEnd, offsetError, list);
        return new Contents(nameIndex(bytes, list), offsetError);
    }

    /** Model name, model type and compute dtype, after the fixed header; returns where they end. */
    private static long readMetadata(HeaderBytes bytes, Map<String, String> meta) throws FormatException {
        long position = FIXED_HEADER_SIZE;
        String modelName = string(bytes, "model_name", position);
        position += 4 + utf8Length(modelName);
        String modelType = string(bytes, "model_type", position);
        position += 4 + utf8Length(modelType);
        int computeDtype = bytes.u8("compute_dtype", position);
        if (computeDtype >= COMPUTE_DTYPES.length) {
            throw bytes.error("compute_dtype", position, "value " + computeDtype + ", expected 0 (F32), 1 (F16) or 2 (BF16)");
        }
        meta.put("model_name", modelName);
        meta.put("model_type", modelType);
        meta.put("compute_dtype", COMPUTE_DTYPES[computeDtype]);
        return position + 1;
    }

    /** The tensor headers from {@code position}: name, shape, block size, stored data offset, block count. */
    private static List<Header> readHeaders(HeaderBytes bytes, long tensorCount, long position) throws FormatException {
        long size = bytes.size();
        // A tensor header takes at least 24 bytes; a larger count cannot be honest.
        if (tensorCount > (size - position) / 24) {
            throw bytes.error("tensor_count", 20, tensorCount + " tensors cannot fit in a file of " + size + " bytes");
        }
        List<Header> headers = new ArrayList<>();
        for (int t = 0; t < tensorCount; t++) {
            String name = string(bytes, "tensor " + t + " name", position);
            position += 4 + utf8Length(name);
            String where = "tensor " + t + " ('" + name + "')";
            int rank = bytes.u32In(where + " rank", position, 0, TensorToWrite.MAX_RANK);
            position += 4;
            long[] shape = new long[rank];
            long count = 1;
            for (int d = 0; d < rank; d++) {
                shape[d] = bytes.u64(where + " dimension " + d, position);
                count = ElementCount.times(count, shape[d]);
                if (count < 0) {
                    throw bytes.error(where + " dimension " + d, position, "the shape has 2^62 elements or more");
                }
                position += 8;
            }
            long blockSizeField = position;
            long blockSize = bytes.u32(where + " block_size", position);
            long storedOffset = bytes.u64(where + " data_offset", position + 4);
            long blocks = bytes.u32(where + " block_count", position + 12);
            if (!Nf4.isBlockSize(blockSize)) {
                throw bytes.error(where + " block_size", blockSizeField, "value " + blockSize
                        + "; qnat reads v1 tensors with even block sizes from 2 to 2^20");
            }
            if (blocks * blockSize != count) {
                throw bytes.error(where + " block_count", position + 12, "value " + blocks + " blocks of " + blockSize
                        + ", but the shape " + Arrays.toString(shape) + " has " + count + " elements");
            }
            headers.add(new Header(name, shape, count, (int) blockSize, storedOffset, blocks, position + 4));
            position += 16;
        }
        return headers;
    }

    /** Each tensor's data, at its corrected offset and up to the next tensor's; its optional parts by their size. */
    private static void readTensors(QnatFile owner, HeaderBytes bytes, List<Header> headers, long headersEnd,
                                    long offsetError, List<QnatTensor> list) throws FormatException {
        long size = bytes.size();
        long expectedStart = headersEnd;
        for (int t = 0; t < headers.size(); t++) {
            Header h = headers.get(t);
            long start = h.storedOffset() - offsetError;
            String where = "tensor " + t + " ('" + h.name() + "') data_offset";
            if (start != expectedStart) {
                throw bytes.error(where, h.field(), "stored " + h.storedOffset() + ", corrected by the writer's error of "
                        + offsetError + " to " + start + ", but the data " + (t == 0 ? "starts after the headers" :
                        "of this tensor starts after the previous tensor's") + " at " + expectedStart);
            }
            long base = Nf4.packedSize(h.count()) + 4 * h.blocks();
            long end = t + 1 < headers.size() ? headers.get(t + 1).storedOffset() - offsetError : size;
            if (end < start || end > size) {
                throw bytes.error(where, h.field(), "the tensor's data [" + start + ", " + end + ") is not inside the file of "
                        + size + " bytes");
            }
            long extra = end - start - base;
            long n = h.blocks();
            boolean zeroPoints;
            if (extra == 0 || extra == n + 4) {
                zeroPoints = false;
            } else if (extra == 4 * n || extra == 5 * n + 4) {
                zeroPoints = true;
            } else {
                throw bytes.error("tensor " + t + " ('" + h.name() + "')", start, (end - start) + " bytes of data: "
                        + base + " for codes and scales plus " + extra + ", which is none of 0, 4n = " + 4 * n
                        + " (zero points), n + 4 = " + (n + 4) + " (quantized scales) or 5n + 4 = " + (5 * n + 4)
                        + " (both), n = " + n + " blocks");
            }
            MemorySegment file = owner.mapping();
            long codesLength = Nf4.packedSize(h.count());
            MemorySegment[] sections = {file.asSlice(start, codesLength).asReadOnly(),
                file.asSlice(start + codesLength, 4 * n).asReadOnly(), null, null};
            long[] offsets = {start, start + codesLength, 0, 0};
            MemorySegment zeroPointSection = zeroPoints ? file.asSlice(start + base, 4 * n).asReadOnly() : null;
            list.add(new QnatTensor(owner, h.name(), h.shape(), h.count(), DType.F32,
                    new TensorStorage(Encoding.NF4, ScaleStorage.ABSMAX_F32, h.blockSize(), 0f),
                    new TensorSections(sections, offsets, null, zeroPointSection)));
            expectedStart = end;
        }
    }

    /** Entry numbers in name order; two tensors of one name are refused. */
    private static int[] nameIndex(HeaderBytes bytes, List<QnatTensor> list) throws FormatException {
        int[] index = IntStream.range(0, list.size()).boxed()
                .sorted(Comparator.comparing(i -> list.get(i).name().getBytes(StandardCharsets.UTF_8), Arrays::compareUnsigned))
                .mapToInt(Integer::intValue).toArray();
        for (int i = 1; i < index.length; i++) {
            if (list.get(index[i]).name().equals(list.get(index[i - 1]).name())) {
                throw new FormatException(bytes.fileName + ": tensor name '" + list.get(index[i]).name()
                        + "' appears twice");
            }
        }
        return index;
    }

    private static String string(HeaderBytes bytes, String field, long position) throws FormatException {
        long length = bytes.u32(field + " length", position);
        if (length > bytes.size() - position - 4) {
            throw bytes.error(field, position, "a string of " + length + " bytes runs past the end of the file");
        }
        return bytes.utf8(field, position + 4, length);
    }

    private static long utf8Length(String s) {
        return s.getBytes(StandardCharsets.UTF_8).length;
    }
}
