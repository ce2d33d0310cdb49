package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.TestData.Shape;
import dev.qnat.nf4.kernel.Nf4Kernels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The vector kernels against the scalar reference, byte for byte. Runs once per vector width: the build
 * starts this class in three JVMs with -Dqnat.vector.bits=128, 256 and 512 (tag "widths").
 */
@Tag("widths")
class KernelEquivalenceTest {
    static final int[] BLOCK_SIZES = {2, 4, 6, 30, 32, 64, 66, 128, 256, 4096, 1000 /* one row of a 1000-wide matrix */};

    static final Nf4Kernels VECTOR = BothKernels.VECTOR;
    static final Nf4Kernels SCALAR = BothKernels.SCALAR;
    static ExecutorService pool;

    @BeforeAll
    static void startPool() {
        pool = Executors.newFixedThreadPool(3);
    }

    @AfterAll
    static void stopPool() {
        pool.shutdownNow();
    }

    @Test
    void theVectorKernelsAreTheOnesUnderTest() {
        String forced = System.getProperty("qnat.vector.bits");
        assertTrue(VECTOR.name().startsWith("panama-"), "kernels in use: " + VECTOR.name());
        if (forced != null) {
            assertEquals("panama-" + forced, VECTOR.name());
        }
    }

    /** Every block size, shape and input type over lengths that hit every tail shape around the blocks. */
    @Test
    void everyBlockSizeShapeAndTypeAgrees() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int blockSize : BLOCK_SIZES) {
            for (int length : lengthsAround(blockSize)) {
                for (Shape shape : Shape.values()) {
                    for (FloatType type : FloatType.values()) {
                        check(seed, length, blockSize, shape, type, random);
                    }
                }
            }
        }
    }

    /** Every length from 0 to 5000, each with a drawn block size, shape and input type. */
    @Test
    void everyLengthUpTo5000Agrees() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int length = 0; length <= 5000; length++) {
            int blockSize = BLOCK_SIZES[random.nextInt(BLOCK_SIZES.length)];
            Shape shape = Shape.values()[random.nextInt(Shape.values().length)];
            FloatType type = FloatType.values()[random.nextInt(FloatType.values().length)];
            check(seed, length, blockSize, shape, type, random);
        }
    }

    /** Lengths 0..40, all primes to 5000, and each block size's neighbourhood up to four blocks. */
    static List<Integer> lengthsAround(int blockSize) {
        TreeSet<Integer> lengths = new TreeSet<>();
        for (int n = 0; n <= 40; n++) {
            lengths.add(n);
        }
        for (int k = 1; k <= 4; k++) {
            for (int d = -3; d <= 3; d++) {
                lengths.add(Math.max(0, k * blockSize + d));
            }
        }
        lengths.add(4999);
        lengths.add(5000);
        // A sample of the primes keeps the run short; everyLengthUpTo5000Agrees covers all of them.
        for (int p = 41; p <= 5000; p += 97) {
            while (!TestData.isPrime(p)) {
                p++;
            }
            lengths.add(p);
        }
        lengths.removeIf(n -> n > 20_000);
        return new ArrayList<>(lengths);
    }

    private static void check(long seed, int length, int blockSize, Shape shape, FloatType type, SplittableRandom random) {
        String label = "seed " + seed + " (-Dqnat.test.seed=" + seed + "), length " + length + ", block " + blockSize
                + ", " + shape + ", " + type;
        float[] values = TestData.values(shape, length, blockSize, random);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = TestData.encode(values, type, arena);
            long blocks = Nf4.blockCount(length, blockSize);
            BothKernels.assertAgree("codes and absmax", label, (k, a) -> quantize(k, src, type, length, blockSize, blocks, a));

            MemorySegment[] scalar = quantize(SCALAR, src, type, length, blockSize, blocks, arena);
            MemorySegment codes = arena.allocate(Nf4.packedSize(length) + 1);
            MemorySegment absmax = arena.allocate(4 * blocks + 1);
            Nf4.quantizeParallel(src, type, blockSize, codes, absmax, pool);
            BothKernels.assertSame(scalar, new MemorySegment[] {codes.asSlice(0, scalar[0].byteSize()),
                absmax.asSlice(0, scalar[1].byteSize())}, "parallel codes and absmax", label, i -> "");

            BothKernels.assertAgree("MSE scales and codes", label,
                    (k, a) -> quantizeMse(k, src, type, length, blockSize, blocks, a));
            MemorySegment oddScales = oddScales(scalar[1], blocks, random, arena);
            BothKernels.assertAgree("codes at given scales", label, (k, a) -> {
                MemorySegment codes2 = a.allocate(Nf4.packedSize(length) + 1).asSlice(1);
                k.encode(src, type, length, blockSize, 0, blocks, oddScales, codes2, null);
                return new MemorySegment[] {codes2};
            });

            // Scales a file may hold: odd ones, and now and then a NaN, an infinity or the largest float.
            MemorySegment storedScales = arena.allocate(4 * blocks);
            for (long b = 0; b < blocks; b++) {
                storedScales.setAtIndex(TestData.FLOAT, b, switch (random.nextInt(16)) {
                    // NaNs with payloads, whose rounding would carry into the sign bit.
                    case 0 -> Float.intBitsToFloat(random.nextBoolean() ? 0x7FFFFFFF : 0xFFBFFFFF);
                    case 1 -> Float.POSITIVE_INFINITY;
                    case 2 -> Float.NEGATIVE_INFINITY;
                    case 3 -> Float.MAX_VALUE;
                    default -> oddScales.getAtIndex(TestData.FLOAT, b);
                });
            }
            for (FloatType out : FloatType.values()) {
                for (MemorySegment scales : new MemorySegment[] {scalar[1], storedScales}) {
                    BothKernels.assertAgree("dequantized " + out + (scales == storedScales ? " at odd scales" : ""), label,
                            (k, a) -> {
                        // One byte more, then sliced off: the kernels must write no further than their elements.
                        MemorySegment dst = a.allocate((long) length * out.byteSize() + 1)
                                .asSlice(0, (long) length * out.byteSize());
                        k.dequantize(scalar[0], scales, blockSize, length, 0, blocks, dst, out);
                        return new MemorySegment[] {dst};
                    });
                }
            }
        }
    }

    private static MemorySegment[] quantizeMse(Nf4Kernels kernels, MemorySegment src, FloatType type, int length,
                                               int blockSize, long blocks, Arena arena) {
        MemorySegment codes = arena.allocate(Nf4.packedSize(length) + 1).asSlice(1);
        MemorySegment scales = arena.allocate(4 * blocks + 3).asSlice(3);
        kernels.mseScales(src, type, length, blockSize, 0, blocks, scales);
        kernels.encode(src, type, length, blockSize, 0, blocks, scales, codes, null);
        return new MemorySegment[] {codes, scales};
    }

    /**
     * Scales as double quantization can store them: each absmax times a drawn factor around 1, and now and
     * then 0, a negative value or one whose reciprocal overflows.
     */
    private static MemorySegment oddScales(MemorySegment absmax, long blocks, SplittableRandom random, Arena arena) {
        MemorySegment scales = arena.allocate(4 * blocks);
        for (long b = 0; b < blocks; b++) {
            float a = absmax.getAtIndex(TestData.FLOAT, b);
            scales.setAtIndex(TestData.FLOAT, b, switch (random.nextInt(12)) {
                case 0 -> 0f;
                case 1 -> -a;
                case 2 -> 1e-39f;
                default -> a * (float) random.nextDouble(0.7, 1.4);
            });
        }
        return scales;
    }

    private static MemorySegment[] quantize(Nf4Kernels kernels, MemorySegment src, FloatType type, int length,
                                            int blockSize, long blocks, Arena arena) {
        // Odd-sized, unaligned destinations: the kernels must not depend on alignment.
        MemorySegment codes = arena.allocate(Nf4.packedSize(length) + 1).asSlice(1);
        MemorySegment absmax = arena.allocate(4 * blocks + 3).asSlice(3);
        kernels.quantize(src, type, length, blockSize, 0, blocks, codes, absmax);
        return new MemorySegment[] {codes, absmax};
    }
}
