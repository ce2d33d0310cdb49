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
 * @param name the tensor's name: 1 to {@value #MAX_NAME_BYTES} UTF-8 bytes, no lone surrogate, unique
 *     within a file
 * @param shape the dimensions, outermost first: at most {@value #MAX_RANK}, none negative, fewer than
 *     2^62 elements in all; empty for a scalar
 * @param dtype the elements' dtype, recorded in the file; F32, F16 or BF16 for NF4
 * @param data the elements, exactly {@code dtype.sizeOf(elementCount())} bytes, read while the file is
 *     written; empty ({@link MemorySegment#NULL}) when {@code encoded} is given
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
     * nested absmax, offset and table. Each section must have exactly the length QNAT prescribes for the
     * tensor's element count and block size (src/spec/qnat-v2.md).
     *
     * @param codes the packed 4-bit codes, {@code ceil(n / 2)} bytes for {@code n} elements
     * @param highNibbleFirst whether element 2i is in the high nibble (bitsandbytes' order)
     * @param scales an f32 absmax per block or, double-quantized, a byte code per block
     * @param nestedScales double-quantized, an f32 per group of 256 blocks; null for f32 absmax, which
     *     is what makes the tensor {@link ScaleStorage#ABSMAX_F32}
     * @param dqOffset the double-quantization offset, stored as given; 0 without double quantization
     * @param table double-quantized, the 256 f32 levels the byte codes index; null for f32 absmax
     */
    public record Encoded(MemorySegment codes, boolean highNibbleFirst, MemorySegment scales, MemorySegment nestedScales,
                          float dqOffset, MemorySegment table) {}


    /** Names longer than this many UTF-8 bytes are refused. */
    public static final int MAX_NAME_BYTES = 65_535;
    /** The most dimensions a tensor may have. */
    public static final int MAX_RANK = 64;

    /**
     * Checks the tensor against the rules above and keeps a copy of {@code shape}.
     *
     * @throws NullPointerException {@code name}, {@code shape}, {@code dtype}, {@code data},
     *     {@code scales} or {@code scaleRule} is null
     * @throws IllegalArgumentException a rule is broken: a bad name or shape, {@code data} of another
     *     size, elements that do not fill whole bytes, NF4 of a dtype other than F32, F16 or BF16, an NF4
     *     block size that is not an even number from 2 to 2^20, a RAW tensor with a block size or
     *     {@code encoded}, encoded sections of the wrong lengths, or {@link ScaleRule#MSE} for a tensor
     *     not quantized here
     */
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

    /**
     * RAW for {@link ScaleStorage#NONE}, NF4 otherwise.
     *
     * @return how the tensor's elements are stored
     */
    public Encoding encoding() {
        return scales == ScaleStorage.NONE ? Encoding.RAW : Encoding.NF4;
    }

    /**
     * Whether the NF4 scales are double-quantized.
     *
     * @return true for {@link ScaleStorage#DOUBLE_QUANT}
     */
    public boolean doubleQuant() {
        return scales == ScaleStorage.DOUBLE_QUANT;
    }

    /**
     * An NF4 tensor, quantized from {@code data} with absmax scales as it is written.
     *
     * @param name the tensor's name
     * @param shape the dimensions, outermost first; empty for a scalar
     * @param dtype F32, F16 or BF16: the dtype of {@code data}
     * @param data the elements to quantize, {@code dtype.sizeOf(elementCount())} bytes
     * @param blockSize elements per block: an even number from 2 to 2^20
     * @param doubleQuant whether to double-quantize the absmax values
     * @return the tensor to write
     * @throws IllegalArgumentException the arguments break a rule of the {@link #TensorToWrite(String,
     *     long[], DType, MemorySegment, ScaleStorage, int, ScaleRule, Encoded) constructor}
     */
    public static TensorToWrite nf4(String name, long[] shape, DType dtype, MemorySegment data, int blockSize,
                                    boolean doubleQuant) {
        return nf4(name, shape, dtype, data, blockSize, doubleQuant, ScaleRule.ABSMAX);
    }

    /**
     * An NF4 tensor, quantized from {@code data} with scales chosen by {@code scaleRule} as it is written.
     *
     * @param name the tensor's name
     * @param shape the dimensions, outermost first; empty for a scalar
     * @param dtype F32, F16 or BF16: the dtype of {@code data}
     * @param data the elements to quantize, {@code dtype.sizeOf(elementCount())} bytes
     * @param blockSize elements per block: an even number from 2 to 2^20
     * @param doubleQuant whether to double-quantize the chosen scales
     * @param scaleRule how each block's scale is chosen
     * @return the tensor to write
     * @throws IllegalArgumentException the arguments break a rule of the {@link #TensorToWrite(String,
     *     long[], DType, MemorySegment, ScaleStorage, int, ScaleRule, Encoded) constructor}
     */
    public static TensorToWrite nf4(String name, long[] shape, DType dtype, MemorySegment data, int blockSize,
                                    boolean doubleQuant, ScaleRule scaleRule) {
        return new TensorToWrite(name, shape, dtype, data, scaleStorage(doubleQuant), blockSize, scaleRule, null);
    }

    /**
     * An NF4 tensor already quantized: its sections are stored as given.
     *
     * @param name the tensor's name
     * @param shape the dimensions, outermost first; empty for a scalar
     * @param dtype F32, F16 or BF16: the dtype the tensor was quantized from
     * @param blockSize elements per block the sections were made with: an even number from 2 to 2^20
     * @param encoded the sections; double-quantized when its nested scales are not null
     * @return the tensor to write, with empty {@code data}
     * @throws NullPointerException {@code encoded} is null
     * @throws IllegalArgumentException the arguments break a rule of the {@link #TensorToWrite(String,
     *     long[], DType, MemorySegment, ScaleStorage, int, ScaleRule, Encoded) constructor}, such as a
     *     section of the wrong length
     */
    public static TensorToWrite nf4Encoded(String name, long[] shape, DType dtype, int blockSize, Encoded encoded) {
        return new TensorToWrite(name, shape, dtype, MemorySegment.NULL, scaleStorage(encoded.nestedScales() != null),
                blockSize, ScaleRule.ABSMAX, encoded);
    }

    /**
     * A tensor stored as it is (RAW).
     *
     * @param name the tensor's name
     * @param shape the dimensions, outermost first; empty for a scalar
     * @param dtype the elements' dtype, any
     * @param data the elements, {@code dtype.sizeOf(elementCount())} bytes, copied into the file
     * @return the tensor to write
     * @throws IllegalArgumentException the arguments break a rule of the {@link #TensorToWrite(String,
     *     long[], DType, MemorySegment, ScaleStorage, int, ScaleRule, Encoded) constructor}
     */
    public static TensorToWrite raw(String name, long[] shape, DType dtype, MemorySegment data) {
        return new TensorToWrite(name, shape, dtype, data, ScaleStorage.NONE, 0, ScaleRule.ABSMAX, null);
    }

    /**
     * Bytes of an NF4 tensor's codes and scales, what "bits per weight" counts: the packed codes, then an
     * f32 absmax per block or, double-quantized, a byte per block and an f32 per group of blocks; not the
     * tables, offsets, headers or padding. The same in a QNAT file and a bitsandbytes export.
     *
     * @param count number of elements, not negative
     * @param blockSize elements per block: an even number from 2 to 2^20
     * @param doubleQuant whether the scales are double-quantized
     * @return the size in bytes of the codes and scales
     * @throws IllegalArgumentException {@code blockSize} is not a valid block size
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

    /**
     * The dimensions, outermost first.
     *
     * @return a copy of the shape; empty for a scalar
     */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /**
     * The number of elements: the product of the dimensions.
     *
     * @return the element count, 1 for a scalar, below 2^62
     */
    public long elementCount() {
        return ElementCount.of(name, shape);
    }
}
