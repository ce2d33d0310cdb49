package dev.qnat.nf4.kernel;

import static jdk.incubator.vector.VectorOperators.GE;
import static jdk.incubator.vector.VectorOperators.GT;
import static jdk.incubator.vector.VectorOperators.I2F;
import static jdk.incubator.vector.VectorOperators.I2S;
import static jdk.incubator.vector.VectorOperators.F2I;
import static jdk.incubator.vector.VectorOperators.L2B;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.LT;
import static jdk.incubator.vector.VectorOperators.MAX;
import static jdk.incubator.vector.VectorOperators.S2I;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2L;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4Codebook;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * NF4 kernels on the Panama Vector API, bit-exact with {@link ScalarNf4Kernels} at every width.
 *
 * <p>The width is fixed when the class loads: {@value #WIDTH_PROPERTY} (128, 256 or 512) or the
 * platform's preferred width, capped at 512. Work goes in groups of 16 elements, the 8 code bytes of
 * one 64-bit store, which is one float vector at 512 bits, two at 256 and four at 128. Codes are
 * chosen by a branch-free binary search over the thresholds and the codebook is read by a 16-entry
 * lane lookup; both agree with the scalar rules because they only compare and multiply in float32.
 * Whatever does not fill a group goes through the scalar helpers.
 */
final class PanamaNf4Kernels implements Nf4Kernels {
    static final String WIDTH_PROPERTY = "qnat.vector.bits";

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final int BITS = chooseBits();
    private static final VectorSpecies<Float> FLOATS = VectorSpecies.of(float.class, VectorShape.forBitSize(BITS));
    private static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, VectorShape.forBitSize(BITS));
    private static final VectorSpecies<Long> LONGS = VectorSpecies.of(long.class, VectorShape.forBitSize(BITS));
    private static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(BITS));
    /** Half-width shorts: as many lanes as {@link #FLOATS}, for F16/BF16 loads and stores. */
    private static final VectorSpecies<Short> HALF_SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(BITS / 2));
    private static final VectorSpecies<Byte> GROUP_BYTES = ByteVector.SPECIES_64;

    private static final int LANES = FLOATS.length();
    private static final int GROUP = 16;
    private static final int VECTORS_PER_GROUP = GROUP / LANES;

    /** Tables padded to a whole number of vectors; lookups read vectors 0..(16 / LANES - 1). */
    private static final float[] LEVEL_TABLE = padded(Nf4Codebook.levels());
    private static final float[] THRESHOLD_TABLE = padded(Nf4Codebook.midpoints());

    private static final float HALF_SUBNORMAL_UNIT = 0x1p-24f;

    static final PanamaNf4Kernels INSTANCE = new PanamaNf4Kernels();

    private PanamaNf4Kernels() {}

    private static int chooseBits() {
        String forced = System.getProperty(WIDTH_PROPERTY, "").strip();
        int bits = forced.isEmpty() ? Math.min(FloatVector.SPECIES_PREFERRED.vectorBitSize(), 512)
                : forced.matches("\\d{1,4}") ? Integer.parseInt(forced) : -1;
        if (bits != 128 && bits != 256 && bits != 512) {
            throw new UnsupportedOperationException(forced.isEmpty()
                    ? "the platform's vectors are " + bits + " bits wide, under 128"
                    : WIDTH_PROPERTY + "=" + forced + " is not 128, 256, 512 or scalar");
        }
        return bits;
    }

    private static float[] padded(float[] table) {
        float[] result = new float[Math.max(GROUP, LANES)];
        System.arraycopy(table, 0, result, 0, table.length);
        return result;
    }

    static int bits() {
        return BITS;
    }

    @Override
    public String name() {
        return "panama-" + BITS;
    }

    // ---- finiteness -------------------------------------------------------------------------------

    @Override
    public long firstNonFinite(MemorySegment src, FloatType type, long from, long to) {
        long i = from;
        if (type == FloatType.F32) {
            for (long end = to - INTS.length(); i <= end; i += INTS.length()) {
                IntVector magnitude = IntVector.fromMemorySegment(INTS, src, 4 * i, LE).and(0x7FFFFFFF);
                if (magnitude.compare(GE, 0x7F800000).anyTrue()) {
                    break;
                }
            }
        } else {
            short infinity = (short) (type == FloatType.F16 ? 0x7C00 : 0x7F80);
            for (long end = to - SHORTS.length(); i <= end; i += SHORTS.length()) {
                ShortVector magnitude = ShortVector.fromMemorySegment(SHORTS, src, 2 * i, LE).and((short) 0x7FFF);
                if (magnitude.compare(GE, infinity).anyTrue()) {
                    break;
                }
            }
        }
        return ScalarNf4Kernels.INSTANCE.firstNonFinite(src, type, i, to);
    }

    // ---- quantize ---------------------------------------------------------------------------------

    @Override
    public void quantize(MemorySegment src, FloatType type, long count, int blockSize, long firstBlock,
                         long endBlock, MemorySegment codes, MemorySegment absmax) {
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float blockAbsmax = absmax(src, type, start, length);
            absmax.set(ScalarNf4Kernels.FLOAT, 4 * block, blockAbsmax);
            int vectorized = blockAbsmax == 0f ? 0 : encodeGroups(src, type, start, length, blockAbsmax, codes);
            ScalarNf4Kernels.encode(src, type, start, vectorized, length, blockAbsmax, codes);
        }
    }

    private static float absmax(MemorySegment src, FloatType type, long start, int length) {
        FloatVector max = FloatVector.zero(FLOATS);
        int i = 0;
        for (int end = length - LANES; i <= end; i += LANES) {
            max = max.max(load(src, type, start + i).abs());
        }
        float result = max.reduceLanes(MAX);
        for (; i < length; i++) {
            result = Math.max(result, Math.abs(ScalarNf4Kernels.read(src, type, start + i)));
        }
        return result;
    }

    /** Encodes the whole groups of a block with a non-zero absmax; returns how many elements it did. */
    private static int encodeGroups(MemorySegment src, FloatType type, long start, int length, float absmax,
                                    MemorySegment codes) {
        FloatVector reciprocal = FloatVector.broadcast(FLOATS, 1f / absmax);
        FloatVector t0 = tablePart(THRESHOLD_TABLE, 0);
        FloatVector t1 = tablePart(THRESHOLD_TABLE, 1);
        FloatVector t2 = tablePart(THRESHOLD_TABLE, 2);
        FloatVector t3 = tablePart(THRESHOLD_TABLE, 3);
        int groups = length / GROUP * GROUP;
        for (int i = 0; i < groups; i += GROUP) {
            ByteVector packed = ByteVector.zero(GROUP_BYTES);
            for (int part = 0; part < VECTORS_PER_GROUP; part++) {
                FloatVector v = load(src, type, start + i + (long) part * LANES).mul(reciprocal);
                // Pairs of int codes seen as one long: the low byte of (pair | pair >>> 28) is lo | hi << 4.
                LongVector pairs = search(v, t0, t1, t2, t3).reinterpretAsLongs();
                LongVector bytes = pairs.or(pairs.lanewise(LSHR, 28));
                packed = packed.or(bytes.convertShape(L2B, GROUP_BYTES, -part));
            }
            packed.intoMemorySegment(codes, (start + i) / 2, LE);
        }
        return groups;
    }

    /** The number of thresholds strictly below each lane of {@code v}: four halving steps. */
    private static IntVector search(FloatVector v, FloatVector t0, FloatVector t1, FloatVector t2, FloatVector t3) {
        FloatVector code = FloatVector.zero(FLOATS).blend(8f, v.compare(GT, THRESHOLD_TABLE[7]));
        code = code.add(4f, v.compare(GT, lookup(code.add(3f), t0, t1, t2, t3)));
        code = code.add(2f, v.compare(GT, lookup(code.add(1f), t0, t1, t2, t3)));
        code = code.add(1f, v.compare(GT, lookup(code, t0, t1, t2, t3)));
        return (IntVector) code.convert(F2I, 0);
    }

    // ---- dequantize -------------------------------------------------------------------------------

    @Override
    public void dequantize(MemorySegment codes, MemorySegment absmax, int blockSize, long count, long firstBlock,
                           long endBlock, MemorySegment dst, FloatType type) {
        FloatVector t0 = tablePart(LEVEL_TABLE, 0);
        FloatVector t1 = tablePart(LEVEL_TABLE, 1);
        FloatVector t2 = tablePart(LEVEL_TABLE, 2);
        FloatVector t3 = tablePart(LEVEL_TABLE, 3);
        for (long block = firstBlock; block < endBlock; block++) {
            long start = block * blockSize;
            int length = (int) Math.min(blockSize, count - start);
            float blockAbsmax = absmax.get(ScalarNf4Kernels.FLOAT, 4 * block);
            FloatVector scale = FloatVector.broadcast(FLOATS, blockAbsmax);
            int groups = length / GROUP * GROUP;
            for (int i = 0; i < groups; i += GROUP) {
                ByteVector packed = ByteVector.fromMemorySegment(GROUP_BYTES, codes, (start + i) / 2, LE);
                for (int part = 0; part < VECTORS_PER_GROUP; part++) {
                    // Each byte widened to a long, its two nibbles spread into the long's two int halves.
                    LongVector pair = (LongVector) packed.convertShape(ZERO_EXTEND_B2L, LONGS, part);
                    IntVector code = pair.and(0xFL).or(pair.lanewise(LSHR, 4).lanewise(LSHL, 32)).reinterpretAsInts();
                    FloatVector level = lookup((FloatVector) code.convert(I2F, 0), t0, t1, t2, t3);
                    store(dst, type, start + i + (long) part * LANES, level.mul(scale));
                }
            }
            ScalarNf4Kernels.decode(codes, start, groups, length, blockAbsmax, dst, type);
        }
    }

    // ---- lane helpers -----------------------------------------------------------------------------

    private static FloatVector tablePart(float[] table, int part) {
        return FloatVector.fromArray(FLOATS, table, Math.min(part, VECTORS_PER_GROUP - 1) * LANES);
    }

    /** {@code table[index]} per lane for a 16-entry table split over 16 / LANES vectors. */
    private static FloatVector lookup(FloatVector index, FloatVector t0, FloatVector t1, FloatVector t2,
                                      FloatVector t3) {
        if (LANES >= 16) {
            return index.selectFrom(t0);
        }
        FloatVector low = index.selectFrom(t0, t1); // indexes wrap modulo 2 * LANES
        if (LANES == 8) {
            return low;
        }
        return low.blend(index.selectFrom(t2, t3), index.compare(GE, 8f));
    }

    private static FloatVector load(MemorySegment src, FloatType type, long index) {
        return switch (type) {
            case F32 -> FloatVector.fromMemorySegment(FLOATS, src, 4 * index, LE);
            case BF16 -> halfBits(src, index).lanewise(LSHL, 16).reinterpretAsFloats();
            case F16 -> f16ToFloat(halfBits(src, index));
        };
    }

    private static IntVector halfBits(MemorySegment src, long index) {
        return (IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, src, 2 * index, LE).convertShape(S2I, INTS, 0);
    }

    /** Float.float16ToFloat on lanes holding sign-extended binary16 patterns; exact. */
    private static FloatVector f16ToFloat(IntVector half) {
        IntVector sign = half.and(0x8000).lanewise(LSHL, 16);
        IntVector magnitude = half.and(0x7FFF);
        // Re-bias the exponent by 127 - 15; infinities and NaNs need it twice to reach 255.
        IntVector rebias = IntVector.broadcast(INTS, 112 << 23);
        IntVector normal = magnitude.lanewise(LSHL, 13).add(rebias).add(rebias, magnitude.compare(GE, 0x7C00));
        IntVector subnormal = ((FloatVector) magnitude.convert(I2F, 0)).mul(HALF_SUBNORMAL_UNIT).reinterpretAsInts();
        return normal.blend(subnormal, magnitude.compare(LT, 0x0400)).or(sign).reinterpretAsFloats();
    }

    private static void store(MemorySegment dst, FloatType type, long index, FloatVector value) {
        switch (type) {
            case F32 -> value.intoMemorySegment(dst, 4 * index, LE);
            case F16 -> storeHalfBits(dst, index, floatToF16(value.reinterpretAsInts()));
            case BF16 -> storeHalfBits(dst, index, floatToBf16(value.reinterpretAsInts()));
        }
    }

    private static void storeHalfBits(MemorySegment dst, long index, IntVector bits) {
        bits.convertShape(I2S, HALF_SHORTS, 0).reinterpretAsShorts().intoMemorySegment(dst, 2 * index, LE);
    }

    /** FloatType.BF16.floatToHalfBits on lanes: round to nearest even, a NaN stays a quiet NaN. */
    private static IntVector floatToBf16(IntVector bits) {
        IntVector rounded = bits.add(0x7FFF).add(bits.lanewise(LSHR, 16).and(1)).lanewise(LSHR, 16);
        IntVector quietNaN = bits.lanewise(LSHR, 16).or(0x0040);
        return rounded.blend(quietNaN, bits.and(0x7FFFFFFF).compare(GT, 0x7F800000));
    }

    /** Float.floatToFloat16 on lanes, NaN payloads included; round to nearest even. */
    private static IntVector floatToF16(IntVector bits) {
        IntVector sign = bits.lanewise(LSHR, 16).and(0x8000);
        IntVector magnitude = bits.and(0x7FFFFFFF);
        // Normal results: drop 13 mantissa bits with a rounding bias of 0xFFF plus the kept bit's parity;
        // a carry runs into the exponent, and past 65504 into infinity, as it should.
        IntVector normal = magnitude.add((15 - 127) << 23).add(0xFFF)
                .add(magnitude.lanewise(LSHR, 13).and(1)).lanewise(LSHR, 13);
        // Subnormal results: adding 0.5f lines the binary16 subnormal unit up with the float's last
        // mantissa bit, so the hardware's own rounding does the work.
        IntVector subnormal = magnitude.reinterpretAsFloats().add(0.5f).reinterpretAsInts().sub(0x3F000000);
        IntVector nan = bits.and(0x007FE000).lanewise(LSHR, 13).or(bits.and(0x1FF0).lanewise(LSHR, 4))
                .or(bits.and(0xF)).or(0x7C00);
        VectorMask<Integer> tooLarge = magnitude.compare(GE, 0x47800000);
        IntVector result = normal
                .blend(subnormal, magnitude.compare(LT, 113 << 23))
                .blend(IntVector.broadcast(INTS, 0x7C00), tooLarge)
                .blend(nan, magnitude.compare(GT, 0x7F800000));
        return result.or(sign);
    }
}
