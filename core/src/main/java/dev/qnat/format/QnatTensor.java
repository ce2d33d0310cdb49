package dev.qnat.format;

import dev.qnat.io.Crc32c;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatMatrix;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.nf4.Nf4Matrix;
import dev.qnat.nf4.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Executor;

/**
 * A tensor of an open {@link QnatFile}: its description, zero-copy views of its sections, and
 * dequantization into caller-provided memory through the codec's kernels. Its sections' CRCs are
 * checked on the first read (unless the file was opened without that); a mismatch refuses the read.
 * Usable from many threads at once, and only while its file is open.
 */
public final class QnatTensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final String[] SECTION_NAMES = {"data", "scales", "nested scales", "table"};

    private final QnatFile file;
    private final String name;
    private final long[] shape;
    private final long elementCount;
    private final DType dtype;
    private final Encoding encoding;
    private final ScaleStorage scaleStorage;
    private final int blockSize;
    private final float dqOffset;
    /** Sections 0..3 as read-only slices (null where unused); v1 adds zero points. */
    private final MemorySegment[] sections;
    private final long[] sectionOffsets;
    private final int[] crcs;
    private final MemorySegment zeroPoints;
    private volatile boolean checked;
    private volatile WeightMatrix matrix;

    QnatTensor(QnatFile file, String name, long[] shape, long elementCount, DType dtype, TensorStorage storage,
               TensorSections sections) {
        this.file = file;
        this.name = name;
        this.shape = shape;
        this.elementCount = elementCount;
        this.dtype = dtype;
        this.encoding = storage.encoding();
        this.scaleStorage = storage.scales();
        this.blockSize = storage.blockSize();
        this.dqOffset = storage.dqOffset();
        this.sections = sections.slices();
        this.sectionOffsets = sections.offsets();
        this.crcs = sections.crcs();
        this.zeroPoints = sections.zeroPoints();
        this.checked = crcs == null || !file.checksOnFirstRead();
    }

    /**
     * The tensor's name.
     *
     * @return the name as stored in the file, unique within it
     */
    public String name() {
        return name;
    }

    /**
     * The dimensions, outermost first.
     *
     * @return a copy of the shape; empty for a scalar
     */
    public long[] shape() {
        return shape.clone();
    }

    /**
     * The number of elements: the product of the dimensions.
     *
     * @return the element count, 1 for a scalar, below 2^62
     */
    public long elementCount() {
        return elementCount;
    }

    /**
     * The dtype the tensor came in, and dequantizes to by default.
     *
     * @return the source dtype; F32, F16 or BF16 for an NF4 tensor
     */
    public DType dtype() {
        return dtype;
    }

    /**
     * How the elements are stored.
     *
     * @return RAW or NF4
     */
    public Encoding encoding() {
        return encoding;
    }

    /**
     * How the NF4 block scales are stored.
     *
     * @return {@link ScaleStorage#NONE} for RAW, otherwise f32 absmax or double quantization
     */
    public ScaleStorage scaleStorage() {
        return scaleStorage;
    }

    /**
     * NF4 block size; 0 for RAW tensors.
     *
     * @return elements per block, or 0
     */
    public int blockSize() {
        return blockSize;
    }

    /**
     * Bytes the tensor takes in the file, all sections together.
     *
     * @return the sum of its section lengths, zero points included, alignment padding not
     */
    public long storedBytes() {
        return Arrays.stream(sections).filter(Objects::nonNull).mapToLong(MemorySegment::byteSize).sum()
                + (zeroPoints == null ? 0 : zeroPoints.byteSize());
    }

    /** {offset, length} in the file of each used section, zero points included. */
    List<long[]> sectionRanges() {
        List<long[]> ranges = new ArrayList<>();
        for (int s = 0; s < sections.length; s++) {
            if (sections[s] != null) {
                ranges.add(new long[] {sectionOffsets[s], sections[s].byteSize()});
            }
        }
        return ranges;
    }

    /**
     * Whether this is a v1 tensor with per-block zero points (dequantized as (level + zp) * scale).
     *
     * @return true for such a tensor; false for every v2 tensor
     */
    public boolean hasZeroPoints() {
        return zeroPoints != null;
    }

    /**
     * The stored bytes: packed codes for NF4, the elements for RAW. Read-only, zero-copy.
     *
     * @return a slice of the mapping: {@code ceil(n / 2)} bytes of codes for {@code n} elements, or the
     *     RAW elements' bytes
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     */
    public MemorySegment data() throws FormatException {
        checkOnFirstRead();
        return sections[QnatLayout.DATA];
    }

    /**
     * The stored scales: f32 absmax, or one code byte per block when double-quantized. Empty for RAW.
     *
     * @return a read-only slice of the mapping, 4 or 1 bytes per block; {@link MemorySegment#NULL} for RAW
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     */
    public MemorySegment scales() throws FormatException {
        checkOnFirstRead();
        return sections[QnatLayout.SCALES] == null ? MemorySegment.NULL : sections[QnatLayout.SCALES];
    }

    /**
     * The double-quantization offset (0 unless {@link ScaleStorage#DOUBLE_QUANT}).
     *
     * @return the offset added to every reconstructed absmax, or 0
     */
    public float doubleQuantOffset() {
        return dqOffset;
    }

    /**
     * Checks the CRCs of the tensor's sections now. A v1 tensor has none: then it checks nothing.
     *
     * @throws FormatException a section's CRC-32C differs from the stored one; the message names the
     *     section and its offset
     */
    public void verify() throws FormatException {
        if (crcs == null) {
            return;
        }
        for (int s = 0; s < sections.length; s++) {
            if (sections[s] != null) {
                int actual = Crc32c.of(sections[s]);
                if (actual != crcs[s]) {
                    throw new FormatException(file.fileName() + ": tensor '" + name + "': " + SECTION_NAMES[s]
                            + " section at offset " + sectionOffsets[s] + " fails its CRC-32C (stored 0x"
                            + Integer.toHexString(crcs[s]) + ", computed 0x" + Integer.toHexString(actual) + ")");
                }
            }
        }
        checked = true;
    }

    private void checkOnFirstRead() throws FormatException {
        if (!checked) {
            verify();
        }
    }

    /**
     * Writes the tensor's values into {@code dst} as {@code type}: NF4 tensors are dequantized, RAW
     * F32/F16/BF16 tensors converted (round to nearest even). {@code dst} must hold exactly
     * {@link #elementCount()} elements.
     *
     * @param dst where the values go: writable, exactly {@code elementCount() * type.byteSize()} bytes
     * @param type the float type to write
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalArgumentException {@code dst} has another size or is read-only
     * @throws UnsupportedOperationException the tensor is RAW of a dtype other than F32, F16 or BF16
     */
    public void dequantize(MemorySegment dst, FloatType type) throws FormatException {
        dequantize(dst, type, null);
    }

    /**
     * As {@link #dequantize(MemorySegment, FloatType)}, with block ranges run on {@code executor} (null: this thread).
     *
     * @param dst where the values go: writable, exactly {@code elementCount() * type.byteSize()} bytes
     * @param type the float type to write
     * @param executor runs the block ranges; null, or for RAW and v1 zero-point tensors: this thread alone
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalArgumentException {@code dst} has another size or is read-only
     * @throws UnsupportedOperationException the tensor is RAW of a dtype other than F32, F16 or BF16
     */
    public void dequantize(MemorySegment dst, FloatType type, Executor executor) throws FormatException {
        Objects.requireNonNull(dst, "dst");
        Objects.requireNonNull(type, "type");
        if (dst.byteSize() != elementCount * type.byteSize()) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + elementCount + " elements, " + dst.byteSize()
                    + " bytes hold " + dst.byteSize() / type.byteSize() + " " + type);
        }
        checkOnFirstRead();
        if (encoding == Encoding.RAW) {
            convertRaw(dst, type);
            return;
        }
        try (Arena arena = Arena.ofShared()) {
            MemorySegment absmax = absmaxF32(arena);
            if (zeroPoints != null) {
                dequantizeWithZeroPoints(absmax, dst, type);
            } else if (executor == null) {
                Nf4.dequantize(sections[QnatLayout.DATA], absmax, blockSize, dst, type);
            } else {
                Nf4.dequantizeParallel(sections[QnatLayout.DATA], absmax, blockSize, dst, type, executor);
            }
        }
    }

    /**
     * The tensor as a weight matrix that multiplies on its stored form (no float copy of the weights):
     * a 2-D NF4 tensor as an {@link Nf4Matrix}, a 2-D RAW F32/F16/BF16 tensor as a {@link FloatMatrix}; shape
     * {@code [rows, cols]}, PyTorch's Linear layout {@code [out_features, in_features]}. Throws
     * {@link IllegalStateException} saying why for a tensor that is not 2-D, has a dimension of 0 or of
     * 2^31 or more, is RAW of another dtype, or is a v1 tensor with zero points.
     *
     * @return the matrix, made on the first call and the same one after
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be such a matrix, for a reason above
     */
    public WeightMatrix matrix() throws FormatException {
        WeightMatrix made = matrix;
        if (made == null) {
            checkOnFirstRead();
            matrix = made = makeMatrix();
        }
        return made;
    }

    /**
     * {@code y[r] = sum over c of W[r][c] * x[c]} with this 2-D tensor as W (see {@link #matrix()}).
     *
     * @param x the input, {@code cols} floats
     * @param y receives the output, {@code rows} floats; not {@code x}
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code x} or {@code y} has another length, or they are one array
     */
    public void matVec(float[] x, float[] y) throws FormatException {
        matrix().matVec(x, y);
    }

    /**
     * As {@link #matVec(float[], float[])}, with row ranges run on {@code executor}.
     *
     * @param x the input, {@code cols} floats
     * @param y receives the output, {@code rows} floats; not {@code x}
     * @param executor runs the row ranges; not null
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code x} or {@code y} has another length, or they are one array
     * @throws NullPointerException {@code executor} is null
     */
    public void matVec(float[] x, float[] y, Executor executor) throws FormatException {
        matrix().matVec(x, y, executor);
    }

    /**
     * As {@link #matVec(float[], float[])} on little-endian float32 segments.
     *
     * @param x the input, {@code cols} floats at any alignment
     * @param y receives the output, {@code rows} floats; writable
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code x} or {@code y} has another size, or {@code y} is read-only
     */
    public void matVec(MemorySegment x, MemorySegment y) throws FormatException {
        matrix().matVec(x, y);
    }

    /**
     * As {@link #matVec(MemorySegment, MemorySegment)}, with row ranges run on {@code executor}.
     *
     * @param x the input, {@code cols} floats at any alignment
     * @param y receives the output, {@code rows} floats; writable
     * @param executor runs the row ranges; not null
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code x} or {@code y} has another size, or {@code y} is read-only
     * @throws NullPointerException {@code executor} is null
     */
    public void matVec(MemorySegment x, MemorySegment y, Executor executor) throws FormatException {
        matrix().matVec(x, y, executor);
    }

    /**
     * {@code y = x W^T}, x {@code [batch][cols]}, y {@code [batch][rows]} (see {@link WeightMatrix}).
     *
     * @param x the inputs, {@code batch * cols} floats, row-major
     * @param batch the number of rows of {@code x} and {@code y}, at least 1
     * @param y receives the outputs, {@code batch * rows} floats, row-major; not {@code x}
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code batch} is below 1, {@code x} or {@code y} has another
     *     length, or they are one array
     */
    public void matMul(float[] x, int batch, float[] y) throws FormatException {
        matrix().matMul(x, batch, y);
    }

    /**
     * As {@link #matMul(float[], int, float[])}, with row ranges run on {@code executor} (null: this thread).
     *
     * @param x the inputs, {@code batch * cols} floats, row-major
     * @param batch the number of rows of {@code x} and {@code y}, at least 1
     * @param y receives the outputs, {@code batch * rows} floats, row-major; not {@code x}
     * @param executor runs the row ranges, or null
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code batch} is below 1, {@code x} or {@code y} has another
     *     length, or they are one array
     */
    public void matMul(float[] x, int batch, float[] y, Executor executor) throws FormatException {
        matrix().matMul(x, batch, y, executor);
    }

    /**
     * As {@link #matMul(float[], int, float[])} on little-endian float32 segments.
     *
     * @param x the inputs, {@code batch * cols} floats, row-major, at any alignment
     * @param batch the number of rows of {@code x} and {@code y}, at least 1
     * @param y receives the outputs, {@code batch * rows} floats, row-major; writable
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code batch} is below 1, {@code x} or {@code y} has another
     *     size, or {@code y} is read-only
     */
    public void matMul(MemorySegment x, int batch, MemorySegment y) throws FormatException {
        matrix().matMul(x, batch, y);
    }

    /**
     * As {@link #matMul(MemorySegment, int, MemorySegment)}, with row ranges run on {@code executor}
     * (null: this thread).
     *
     * @param x the inputs, {@code batch * cols} floats, row-major, at any alignment
     * @param batch the number of rows of {@code x} and {@code y}, at least 1
     * @param y receives the outputs, {@code batch * rows} floats, row-major; writable
     * @param executor runs the row ranges, or null
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor cannot be a matrix (see {@link #matrix()})
     * @throws IllegalArgumentException {@code batch} is below 1, {@code x} or {@code y} has another
     *     size, or {@code y} is read-only
     */
    public void matMul(MemorySegment x, int batch, MemorySegment y, Executor executor) throws FormatException {
        matrix().matMul(x, batch, y, executor);
    }

    private WeightMatrix makeMatrix() {
        String what = "tensor '" + name + "' " + Arrays.toString(shape);
        if (shape.length != 2) {
            throw new IllegalStateException(what + " is " + shape.length + "-D; matVec and matMul need a 2-D tensor");
        }
        if (shape[0] < 1 || shape[1] < 1 || shape[0] > Integer.MAX_VALUE || shape[1] > Integer.MAX_VALUE) {
            throw new IllegalStateException(what + " does not fit a matrix: each dimension must be 1 to 2^31 - 1");
        }
        int rows = (int) shape[0];
        int cols = (int) shape[1];
        MemorySegment data = sections[QnatLayout.DATA];
        if (encoding == Encoding.RAW) {
            FloatType type = dtype.floatType().orElseThrow(() -> new IllegalStateException(what + " is RAW " + dtype
                    + "; matVec and matMul take F32, F16 or BF16"));
            return FloatMatrix.of(data, type, rows, cols);
        }
        if (zeroPoints != null) {
            throw new IllegalStateException(what + " is a QNAT v1 tensor with zero points ((level + zp) * scale);"
                    + " matVec and matMul do not take those, dequantize it instead");
        }
        if (scaleStorage == ScaleStorage.DOUBLE_QUANT) {
            return Nf4Matrix.doubleQuantized(data, sections[QnatLayout.SCALES], sections[QnatLayout.NESTED_SCALES],
                    dqOffset, sections[QnatLayout.TABLE].toArray(F32), rows, cols, blockSize);
        }
        return Nf4Matrix.of(data, sections[QnatLayout.SCALES], rows, cols, blockSize);
    }

    /**
     * The values as a new float array (at most 2^31 - 9 elements).
     *
     * @return {@link #elementCount()} float32 values in C order
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor has more elements than one array takes
     * @throws UnsupportedOperationException the tensor is RAW of a dtype other than F32, F16 or BF16
     */
    public float[] toFloats() throws FormatException {
        if (elementCount > Integer.MAX_VALUE - 8) {
            throw new IllegalStateException("tensor '" + name + "' has " + elementCount
                    + " elements, too many for one array; dequantize into a MemorySegment");
        }
        float[] values = new float[(int) elementCount];
        dequantize(MemorySegment.ofArray(values), FloatType.F32);
        return values;
    }

    /**
     * The f32 absmax of every block, as stored or reconstructed from the double quantization (then
     * allocated in {@code arena}); with {@link #data()} and {@link Nf4#dequantize} it lets a caller
     * dequantize any range of whole blocks. NF4 tensors only. A v1 tensor's zero points are not in them
     * (see {@link #hasZeroPoints()}).
     *
     * @param arena where the reconstructed values are allocated; unused unless double-quantized
     * @return one f32 per block: the stored scales section itself (read-only), or a new segment of
     *     {@code arena}
     * @throws FormatException this is the tensor's first read and a section fails its CRC-32C
     * @throws IllegalStateException the tensor is RAW
     */
    public MemorySegment absmax(Arena arena) throws FormatException {
        if (encoding != Encoding.NF4) {
            throw new IllegalStateException("tensor '" + name + "' is RAW and has no scales");
        }
        checkOnFirstRead();
        return absmaxF32(arena);
    }

    private MemorySegment absmaxF32(Arena arena) {
        MemorySegment scales = sections[QnatLayout.SCALES];
        if (scaleStorage != ScaleStorage.DOUBLE_QUANT) {
            return scales;
        }
        long blocks = scales.byteSize();
        float[] table = sections[QnatLayout.TABLE].toArray(F32);
        MemorySegment absmax = arena.allocate(4 * blocks, 64);
        DoubleQuantization.dequantize(scales, sections[QnatLayout.NESTED_SCALES], dqOffset, table, blocks, absmax);
        return absmax;
    }

    private void dequantizeWithZeroPoints(MemorySegment absmax, MemorySegment dst, FloatType type) {
        MemorySegment codes = sections[QnatLayout.DATA];
        for (long i = 0; i < elementCount; i++) {
            int code = (codes.get(ValueLayout.JAVA_BYTE, i / 2) >> (4 * (i & 1))) & 0xF;
            long block = i / blockSize;
            float value = (Nf4Codebook.level(code) + zeroPoints.getAtIndex(F32, block)) * absmax.getAtIndex(F32, block);
            type.write(dst, i, value);
        }
    }

    private void convertRaw(MemorySegment dst, FloatType type) {
        FloatType from = dtype.floatType().orElseThrow(() -> new UnsupportedOperationException("tensor '" + name
                + "' is " + dtype + ", not a float type; read its bytes with data()"));
        MemorySegment src = sections[QnatLayout.DATA];
        if (from == type) {
            MemorySegment.copy(src, 0, dst, 0, src.byteSize());
            return;
        }
        for (long i = 0; i < elementCount; i++) {
            type.write(dst, i, from.read(src, i));
        }
    }

    @Override
    public String toString() {
        return name + " " + Arrays.toString(shape) + " " + dtype + " " + encoding
                + (encoding == Encoding.NF4 ? " block " + blockSize + " " + scaleStorage : "");
    }
}
