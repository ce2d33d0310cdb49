package dev.qnat.nf4;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;

/**
 * QLoRA's double quantization of the per-block absmax values, as bitsandbytes does it with
 * {@code compress_statistics=True}: subtract the mean (the offset), then quantize what is left in
 * groups of 256 to 8-bit codes over the signed dynamic map, keeping one float32 absmax per group.
 * At block size 64 that is 8 + 32/256 bits per block instead of 32: 4.127 bits per weight, not 4.5.
 *
 * <p>The offset is the mean of the absmax values accumulated in float64 and rounded to float32 (torch
 * sums in float32, so an offset read from a bitsandbytes file may differ in its last bits; readers take
 * the stored one). The code of a value is chosen exactly as bitsandbytes' CUDA {@code dQuantize} does:
 * a 7-step binary search over the sorted table, then the nearer of the two neighbours by float32
 * midpoints. Reconstruction: {@code table[code] * nestedAbsmax[group] + offset}, two float32 operations.
 */
public final class DoubleQuantization {
    /** Values per nested group (bitsandbytes' nested blocksize). */
    public static final int GROUP_SIZE = 256;
    /** Entries of the dynamic map. */
    public static final int TABLE_SIZE = 256;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** 10^(i-6) for i = 0..6, as Python's float literals, so with one correct rounding each. */
    private static final double[] DECADES = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0};
    private static final float[] SIGNED_DYNAMIC_MAP = signedDynamicMap();
    /**
     * Values read at a time into a heap array. These loops run once per tensor, after its quantization,
     * mostly before the JIT has compiled them with C2; loops over arrays are fast at every tier, where
     * segment accesses one by one were slow at C1 (with the same change in Nf4.errorAtStoredAbsmax,
     * default `qnat quantize` of a 444 MB checkpoint went from 4.97 to 3.98 s, medians of 5).
     */
    private static final int CHUNK = 4096;

    private DoubleQuantization() {}

    /**
     * A copy of bitsandbytes' {@code create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)}.
     *
     * @return a new array of the {@value #TABLE_SIZE} levels, sorted ascending (0 and 1 among them); a code indexes it
     */
    public static float[] table() {
        return SIGNED_DYNAMIC_MAP.clone();
    }

    /**
     * Number of nested groups, and so of nested absmax values, for {@code blocks} absmax values.
     *
     * @param blocks the number of absmax values (one per NF4 block), not negative
     * @return {@code ceil(blocks / 256)}, 0 for no blocks
     */
    public static long groupCount(long blocks) {
        return blocks / GROUP_SIZE + (blocks % GROUP_SIZE == 0 ? 0 : 1);
    }

    /**
     * For i = 0..6: the 2^i means of neighbouring points of a float32 linspace of 2^i + 1 points from 0.1
     * to 1, times 10^(i-6) and times -10^(i-6); then 0 and 1; sorted. The linspace and the scaling are
     * computed as torch computes them for float32 on the CPU.
     */
    private static float[] signedDynamicMap() {
        float[] table = new float[TABLE_SIZE];
        int n = 0;
        for (int i = 0; i < 7; i++) {
            float[] points = linspace(0.1f, 1f, (1 << i) + 1);
            float scale = (float) DECADES[i];
            for (int k = 0; k + 1 < points.length; k++) {
                float mean = (points[k] + points[k + 1]) / 2f;
                table[n++] = scale * mean;
                table[n++] = -scale * mean;
            }
        }
        table[n++] = 0f;
        table[n++] = 1f;
        Arrays.sort(table, 0, n);
        return table;
    }

    /** torch.linspace for float32: a float step, the first half counted up from start, the rest down from end. */
    private static float[] linspace(float start, float end, int steps) {
        float[] points = new float[steps];
        float step = (end - start) / (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++) {
            points[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
        }
        return points;
    }

    /**
     * Double-quantizes {@code blocks} float32 absmax values read from {@code absmax}, writing one code
     * byte per value to {@code codes} and one float32 per group of 256 to {@code nestedAbsmax}; returns
     * the offset. The values must be finite.
     *
     * @param absmax the {@code blocks} little-endian float32 absmax values, at least {@code 4 * blocks} bytes
     * @param blocks the number of values to quantize
     * @param codes receives one code byte per value, at least {@code blocks} bytes
     * @param nestedAbsmax receives one little-endian float32 per group of 256 values, at least
     *        {@code 4 * groupCount(blocks)} bytes
     * @return the offset subtracted from every value before it was coded, as {@link #offset} gives it
     * @throws IllegalArgumentException if a segment is too small
     * @throws NonFiniteValueException if a value is a NaN or an infinity; nothing has been written then
     */
    public static float quantize(MemorySegment absmax, long blocks, MemorySegment codes, MemorySegment nestedAbsmax) {
        Objects.requireNonNull(absmax, "absmax");
        checkRoom(absmax, 4 * blocks, "absmax", blocks);
        checkRoom(codes, blocks, "codes", blocks);
        checkRoom(nestedAbsmax, 4 * groupCount(blocks), "nested absmax", blocks);
        float offset = offset(absmax, blocks);
        float[] values = new float[GROUP_SIZE];
        byte[] groupCodes = new byte[GROUP_SIZE];
        for (long group = 0, start = 0; start < blocks; group++, start += GROUP_SIZE) {
            int length = (int) Math.min(GROUP_SIZE, blocks - start);
            MemorySegment.copy(absmax, FLOAT, 4 * start, values, 0, length);
            float groupAbsmax = 0f;
            for (int i = 0; i < length; i++) {
                groupAbsmax = Math.max(groupAbsmax, Math.abs(values[i] - offset));
            }
            nestedAbsmax.setAtIndex(FLOAT, group, groupAbsmax);
            float reciprocal = 1f / groupAbsmax;
            for (int i = 0; i < length; i++) {
                groupCodes[i] = (byte) encode((values[i] - offset) * reciprocal);
            }
            MemorySegment.copy(groupCodes, 0, codes, ValueLayout.JAVA_BYTE, start, length);
        }
        return offset;
    }

    /**
     * Double-quantizes {@code blocks} scales as {@link #quantize} does, then replaces them in {@code scales}
     * by the values a reader reconstructs from what was written ({@link #dequantize}): the scales as stored,
     * against which MSE codes are chosen. Returns the offset.
     *
     * @param scales the {@code blocks} little-endian float32 absmax values, overwritten with their stored values
     * @param blocks the number of values to quantize
     * @param codes receives one code byte per value, at least {@code blocks} bytes
     * @param nestedAbsmax receives one little-endian float32 per group of 256 values, at least
     *        {@code 4 * groupCount(blocks)} bytes
     * @return the offset subtracted from every value before it was coded
     * @throws IllegalArgumentException if a segment is too small
     * @throws NonFiniteValueException if a value is a NaN or an infinity; nothing has been written then
     */
    public static float quantizeToStored(MemorySegment scales, long blocks, MemorySegment codes,
                                         MemorySegment nestedAbsmax) {
        float offset = quantize(scales, blocks, codes, nestedAbsmax);
        dequantize(codes, nestedAbsmax, offset, SIGNED_DYNAMIC_MAP, blocks, scales);
        return offset;
    }

    /**
     * The offset {@link #quantize} subtracts: the mean of {@code blocks} float32 absmax values, summed in
     * float64 and rounded to float32. The values must be finite.
     *
     * @param absmax the little-endian float32 values, at least {@code 4 * blocks} bytes
     * @param blocks the number of values to average
     * @return their mean, 0 for no values
     * @throws IllegalArgumentException if {@code absmax} is too small
     * @throws NonFiniteValueException if a value is a NaN or an infinity, with its index
     */
    public static float offset(MemorySegment absmax, long blocks) {
        Objects.requireNonNull(absmax, "absmax");
        checkRoom(absmax, 4 * blocks, "absmax", blocks);
        double sum = 0;
        float[] values = new float[CHUNK];
        for (long start = 0; start < blocks; start += CHUNK) {
            int length = (int) Math.min(CHUNK, blocks - start);
            MemorySegment.copy(absmax, FLOAT, 4 * start, values, 0, length);
            for (int i = 0; i < length; i++) {
                if (!Float.isFinite(values[i])) {
                    throw new NonFiniteValueException(start + i, values[i]);
                }
                sum += values[i];
            }
        }
        return blocks == 0 ? 0f : (float) (sum / blocks);
    }

    /**
     * Reconstructs {@code blocks} absmax values: {@code table[code] * nestedAbsmax[group] + offset}.
     *
     * @param codes one code byte per value, at least {@code blocks} bytes
     * @param nestedAbsmax one little-endian float32 per group of 256 values, at least
     *        {@code 4 * groupCount(blocks)} bytes
     * @param offset added to every value, as {@link #quantize} returned it
     * @param table the {@value #TABLE_SIZE} levels a code selects, usually {@link #table()}
     * @param blocks the number of values to reconstruct
     * @param absmax receives the little-endian float32 values, at least {@code 4 * blocks} bytes
     * @throws IllegalArgumentException if {@code table} has not {@value #TABLE_SIZE} entries or a segment is too small
     */
    public static void dequantize(MemorySegment codes, MemorySegment nestedAbsmax, float offset, float[] table,
                                  long blocks, MemorySegment absmax) {
        if (Objects.requireNonNull(table, "table").length != TABLE_SIZE) {
            throw new IllegalArgumentException("double-quantization table has " + table.length + " entries, not "
                    + TABLE_SIZE);
        }
        checkRoom(codes, blocks, "codes", blocks);
        checkRoom(nestedAbsmax, 4 * groupCount(blocks), "nested absmax", blocks);
        checkRoom(absmax, 4 * blocks, "absmax", blocks);
        byte[] groupCodes = new byte[GROUP_SIZE];
        float[] values = new float[GROUP_SIZE];
        for (long group = 0, start = 0; start < blocks; group++, start += GROUP_SIZE) {
            int length = (int) Math.min(GROUP_SIZE, blocks - start);
            MemorySegment.copy(codes, ValueLayout.JAVA_BYTE, start, groupCodes, 0, length);
            float groupAbsmax = nestedAbsmax.getAtIndex(FLOAT, group);
            for (int i = 0; i < length; i++) {
                values[i] = table[Byte.toUnsignedInt(groupCodes[i])] * groupAbsmax + offset;
            }
            MemorySegment.copy(values, 0, absmax, FLOAT, 4 * start, length);
        }
    }

    /**
     * The code of {@code x}: what {@link #encodeReference} gives, found in a precomputed step function.
     * Its seven dependent table loads made the reference the slowest part of writing a double-quantized
     * file; here it is one bucket load and a comparison or two.
     */
    static int encode(float x) {
        if (x != x) {
            return encodeReference(SIGNED_DYNAMIC_MAP, x);
        }
        int key = orderKey(x);
        int step = STEPS.bucketStart[(key >> 16) + 32768];
        while (step + 1 < STEPS.keys.length && key >= STEPS.keys[step + 1]) {
            step++;
        }
        return STEPS.codes[step] & 0xFF;
    }

    /** Float bits as ints that order like the floats (-0.0 just below +0.0). */
    private static int orderKey(float x) {
        int bits = Float.floatToRawIntBits(x);
        return bits ^ ((bits >> 31) & 0x7FFFFFFF);
    }

    private static float fromOrderKey(int key) {
        return Float.intBitsToFloat(key ^ ((key >> 31) & 0x7FFFFFFF));
    }

    /**
     * The reference's answer as a step function of x over all non-NaN floats: {@code keys[j]} is the
     * order key where code {@code codes[j]} starts. The reference never decreases as x grows
     * (DoubleQuantizationTest checks both against each other), so each start is found by bisection.
     */
    private record Steps(int[] keys, byte[] codes, char[] bucketStart) {
        static Steps compute(float[] table) {
            int lowest = orderKey(Float.NEGATIVE_INFINITY);
            int highest = orderKey(Float.POSITIVE_INFINITY);
            int[] keys = new int[TABLE_SIZE + 1];
            byte[] codes = new byte[TABLE_SIZE + 1];
            int count = 0;
            int start = lowest;
            while (true) {
                int code = encodeReference(table, fromOrderKey(start));
                keys[count] = start;
                codes[count++] = (byte) code;
                if (encodeReference(table, fromOrderKey(highest)) == code) {
                    break;
                }
                int low = start;
                int high = highest; // encode(low) == code < encode(high)
                while ((long) high - low > 1) {
                    int middle = (int) (((long) low + high) >> 1);
                    if (encodeReference(table, fromOrderKey(middle)) == code) {
                        low = middle;
                    } else {
                        high = middle;
                    }
                }
                start = high;
            }
            keys = Arrays.copyOf(keys, count);
            codes = Arrays.copyOf(codes, count);
            char[] bucketStart = new char[1 << 16];
            for (int bucket = 0, step = 0; bucket < bucketStart.length; bucket++) {
                long firstKey = ((long) bucket - 32768) << 16;
                while (step + 1 < count && keys[step + 1] <= firstKey) {
                    step++;
                }
                bucketStart[bucket] = (char) step;
            }
            return new Steps(keys, codes, bucketStart);
        }
    }

    private static final Steps STEPS = Steps.compute(SIGNED_DYNAMIC_MAP);

    /** bitsandbytes' dQuantize (not stochastic): a binary search, then the nearer neighbour by midpoints. */
    static int encodeReference(float[] table, float x) {
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = -1f;
        float upper = 1f;
        float value = table[pivot];
        for (int step = 64; step > 0; step >>= 1) {
            if (x > value) {
                lowerPivot = pivot;
                lower = value;
                pivot += step;
            } else {
                upperPivot = pivot;
                upper = value;
                pivot -= step;
            }
            value = table[pivot];
        }
        if (upperPivot == 255) {
            upper = table[upperPivot];
        }
        if (lowerPivot == 0) {
            lower = table[lowerPivot];
        }
        if (x > value) {
            return x > (upper + value) * 0.5f ? upperPivot : pivot;
        }
        return x < (lower + value) * 0.5f ? lowerPivot : pivot;
    }

    private static void checkRoom(MemorySegment segment, long needed, String what, long blocks) {
        if (Objects.requireNonNull(segment, what).byteSize() < needed) {
            throw new IllegalArgumentException(what + " holds " + segment.byteSize() + " bytes but " + blocks
                    + " blocks need " + needed);
        }
    }
}
