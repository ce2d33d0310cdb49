package dev.qnat.format;

import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.ScaleRule;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor for {@link QnatWriter}: its name, shape, dtype and elements (little-endian, C order, e.g. a
 * slice of a mapped safetensors file), and how to store it.
 *
 * @param scales how the block scales are kept: {@link ScaleStorage#NONE} for a RAW tensor, stored as it
 *     is; otherwise NF4 with f32 absmax or double quantization
 * @param blockSize NF4 block size (0 for RAW)
 * @param scaleRule how the NF4 block scales are chosen from {@code data}; {@link ScaleRule#ABSMAX} for RAW
 *     and already encoded tensors
 * @param encoded already quantized sections to store as they are (e.g. imported from bitsandbytes), or
 *     null to quantize {@code data}
 */
public record TensorToWrite(String name, long[] shape, DType dtype, MemorySegment data, ScaleStorage scales,
                            int blockSize, ScaleRule scaleRule, Encoded encoded) {

    /**
     * NF4 sections made elsewhere: packed codes, and f32 absmax or the double quantization's byte codes,
     * nested absmax, offset and table.
     *
     * @param highNibbleFirst whether element 2i is in the high nibble (bitsandbytes' order)
     */
    public record Encoded(MemorySegment codes, boolean highNibbleFirst, MemorySegment scales, MemorySegment nestedScales,
                          float dqOffset, MemorySegment table) {}


    /** Names longer than this many UTF-8 bytes are refused. */
    public static final int MAX_NAME_BYTES = 65_535;
    /** The most dimensions a tensor may have. */
    public static final int MAX_RANK = 64;

    public TensorToWrite {
        TensorNames.check(Objects.requireNonNull(name, "name"));
        shape = Objects.requireNonNull(shape, "shape").clone();
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(data, "data");
        Objects.requireNonNull(scales, "scales");
        Objects.requireNonNull(scaleRule, "scaleRule");
        if (scaleRule != ScaleRule.ABSMAX && (scales == ScaleStorage.NONE || encoded != null)) {
            throw new IllegalArgumentException("tensor '" + name + "': only a tensor quantized here has its scales chosen");
        }
        int nameBytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (nameBytes > MAX_NAME_BYTES) {
            throw new IllegalArgumentException("tensor name must have 1 to " + MAX_NAME_BYTES + " UTF-8 bytes, '" + name
                    + "' has " + nameBytes);
        }
        long count = ElementCount.of(name, shape);
        long size = encoded != null ? 0 : dtype.sizeOf(count);
        if (size < 0) {
            throw new IllegalArgumentException("tensor '" + name + "': " + count + " elements of " + dtype
                    + " do not fill whole bytes");
        }
        if (data.byteSize() != size) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + Arrays.toString(shape) + " of " + dtype
                    + " needs " + size + " bytes, the data has " + data.byteSize());
        }
        if (scales != ScaleStorage.NONE) {
            if (dtype.floatType().isEmpty()) {
                throw new IllegalArgumentException("tensor '" + name + "': NF4 quantizes F32, F16 or BF16, not " + dtype);
            }
            Nf4.checkBlockSize(blockSize);
            if (encoded != null) {
                checkEncoded(name, count, dtype, blockSize, scales == ScaleStorage.DOUBLE_QUANT, encoded);
            }
        } else if (blockSize != 0 || encoded != null) {
            throw new IllegalArgumentException("tensor '" + name + "': a RAW tensor has no block size or NF4 sections");
        }
    }

    /** RAW for {@link ScaleStorage#NONE}, NF4 otherwise. */
    public Encoding encoding() {
        return scales == ScaleStorage.NONE ? Encoding.RAW : Encoding.NF4;
    }

    /** Whether the NF4 scales are double-quantized. */
    public boolean doubleQuant() {
        return scales == ScaleStorage.DOUBLE_QUANT;
    }

    /** An NF4 tensor, quantized from {@code data} with absmax scales as it is written. */
    public static TensorToWrite nf4(String name, long[] shape, DType dtype, MemorySegment data, int blockSize,
                                    boolean doubleQuant) {
        return nf4(name, shape, dtype, data, blockSize, doubleQuant, ScaleRule.ABSMAX);
    }

    /** An NF4 tensor, quantized from {@code data} with scales chosen by {@code scaleRule} as it is written. */
    public static TensorToWrite nf4(String name, long[] shape, DType dtype, MemorySegment data, int blockSize,
                                    boolean doubleQuant, ScaleRule scaleRule) {
        return new TensorToWrite(name, shape, dtype, data, scaleStorage(doubleQuant), blockSize, scaleRule, null);
    }

    /** An NF4 tensor already quantized: its sections are stored as given. */
    public static TensorToWrite nf4Encoded(String name, long[] shape, DType dtype, int blockSize, Encoded encoded) {
        return new TensorToWrite(name, shape, dtype, MemorySegment.NULL, scaleStorage(encoded.nestedScales() != null),
                blockSize, ScaleRule.ABSMAX, encoded);
    }

    /** A tensor stored as it is. */
    public static TensorToWrite raw(String name, long[] shape, DType dtype, MemorySegment data) {
        return new TensorToWrite(name, shape, dtype, data, ScaleStorage.NONE, 0, ScaleRule.ABSMAX, null);
    }

    /**
     * Bytes of an NF4 tensor's codes and scales, what "bits per weight" counts: the packed codes, then an
     * f32 absmax per block or, double-quantized, a byte per block and an f32 per group of blocks; not the
     * tables, offsets, headers or padding. The same in a QNAT file and a bitsandbytes export.
     */
    public static long payloadBytes(long count, int blockSize, boolean doubleQuant) {
        long[] lengths = QnatLayout.sectionLengths(count, DType.F32, Encoding.NF4, blockSize, doubleQuant);
        return lengths[QnatLayout.DATA] + lengths[QnatLayout.SCALES] + Math.max(0, lengths[QnatLayout.NESTED_SCALES]);
    }

    private static ScaleStorage scaleStorage(boolean doubleQuant) {
        return doubleQuant ? ScaleStorage.DOUBLE_QUANT : ScaleStorage.ABSMAX_F32;
    }

    private static void checkEncoded(String name, long count, DType dtype, int blockSize, boolean doubleQuant,
                                     Encoded encoded) {
        long[] expected = QnatLayout.sectionLengths(count, dtype, Encoding.NF4, blockSize, doubleQuant);
        MemorySegment[] given = {encoded.codes(), encoded.scales(), encoded.nestedScales(), encoded.table()};
        String[] what = {"codes", "scales", "nested scales", "table"};
        for (int s = 0; s < given.length; s++) {
            long length = given[s] == null ? -1 : given[s].byteSize();
            if (length != expected[s]) {
                throw new IllegalArgumentException("tensor '" + name + "': " + what[s] + " of " + length + " bytes, "
                        + count + " elements at block " + blockSize + " need " + expected[s]);
            }
        }
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** The number of elements: the product of the dimensions. */
    public long elementCount() {
        return ElementCount.of(name, shape);
    }
}
