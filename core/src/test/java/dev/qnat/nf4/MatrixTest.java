package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.kernel.MatVecKernelProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.ForkJoinPool;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Nf4Matrix and FloatMatrix against a float64 reference computed here from the dequantized weights: each
 * output within (cols + 2) * 2^-24 * sum |w x|; and bit for bit against the summation order that
 * src/spec/nf4-linear.md gives for the width. Runs once per vector width, in its own JVM (tag "widths").
 */
@Tag("widths")
class MatrixTest {
    static final int[] BLOCK_SIZES = {2, 8, 24, 30, 64, 128, 4096};
    /** rows x cols: 1 x n, n x 1, odd cols (rows start mid-byte), cols around the chunk widths, blocks across rows. */
    static final int[][] SHAPES = {
        {1, 1}, {1, 7}, {7, 1}, {1, 64}, {64, 1}, {3, 5}, {5, 64}, {2, 63}, {9, 65}, {4, 128}, {17, 200}, {3, 257},
        {1, 1000}, {6, 520}, {33, 96}, {8, 1024}, {5, 136}, {2, 4104}, {13, 72}, {11, 8}, {3, 192},
    };

    /** Three workers (daemon threads), more than this machine's cores, so that row ranges interleave. */
    static final ForkJoinPool pool = new ForkJoinPool(3);

    @Test
    void theVectorKernelsAreTheOnesUnderTest() {
        String forced = System.getProperty("qnat.vector.bits");
        String name = MatVecKernelProvider.kernels().name();
        assertTrue(name.startsWith("panama-"), "kernels in use: " + name);
        if (forced != null) {
            assertEquals("panama-" + forced, name);
        }
    }

    @Test
    void nf4WithinTheFloat32BoundEveryShapeAndBlockSize() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int[] shape : SHAPES) {
            for (int blockSize : BLOCK_SIZES) {
                for (boolean dq : new boolean[] {false, true}) {
                    int batch = 1 + random.nextInt(5);
                    checkNf4(seed, random, shape[0], shape[1], blockSize, dq, batch);
                }
            }
        }
    }

    @Test
    void everyBatchFrom1To17() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int batch = 1; batch <= 17; batch++) {
            int[] shape = SHAPES[random.nextInt(SHAPES.length)];
            checkNf4(seed, random, shape[0], shape[1], 64, true, batch);
            checkNf4(seed, random, 9, 136, BLOCK_SIZES[random.nextInt(BLOCK_SIZES.length)], false, batch);
            for (FloatType type : FloatType.values()) {
                checkRaw(seed, random, shape[0], shape[1], type, batch);
            }
        }
    }

    @Test
    void drawnShapes() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < 150; i++) {
            int rows = 1 + random.nextInt(40);
            int cols = random.nextBoolean() ? 8 * (1 + random.nextInt(80)) : 1 + random.nextInt(700);
            int blockSize = random.nextBoolean() ? BLOCK_SIZES[random.nextInt(BLOCK_SIZES.length)] : 2 * (1 + random.nextInt(100));
            checkNf4(seed, random, rows, cols, blockSize, random.nextBoolean(), 1 + random.nextInt(17));
        }
    }

    @Test
    void rawWithinTheFloat32BoundEveryShape() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int[] shape : SHAPES) {
            for (FloatType type : FloatType.values()) {
                checkRaw(seed, random, shape[0], shape[1], type, 1 + random.nextInt(5));
            }
        }
    }

    /** A matrix larger than one row range, so that the executor gets many tasks. */
    @Test
    void executorsGiveTheSameBitsOnLargeMatrices() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        checkNf4(seed, random, 300, 1032, 64, true, 3);
        checkNf4(seed, random, 300, 1024, 64, true, 2); // row ranges on the fast path: chunks (or halves) in one block
        checkNf4(seed, random, 260, 1024, 128, false, 1);
        checkNf4(seed, random, 1100, 130, 30, false, 1);
        checkRaw(seed, random, 300, 1031, FloatType.BF16, 2);
    }

    /** The float lanes of the kernels under test (panama-BITS). */
    private static int lanes() {
        String name = MatVecKernelProvider.kernels().name();
        return Integer.parseInt(name.substring(name.indexOf('-') + 1)) / 32;
    }

    private static float[] gaussian(SplittableRandom random, int n, double sigma) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) (random.nextGaussian() * sigma);
        }
        return values;
    }

    private static void checkNf4(long seed, SplittableRandom random, int rows, int cols, int blockSize, boolean dq,
                                 int batch) {
        float[] weights = gaussian(random, rows * cols, 0.02);
        if (random.nextInt(5) == 0 && weights.length > 3) {
            Arrays.fill(weights, 0, weights.length / 3, 0f); // zero blocks
        }
        Nf4Matrix matrix = Nf4Matrix.quantize(weights, rows, cols, blockSize, dq);
        float[] restored = new float[rows * cols];
        matrix.dequantize(restored);
        MatrixReference.Order order = cols % 8 == 0 && blockSize % 8 == 0 ? MatrixReference.Order.CHUNKED
                : MatrixReference.Order.SCALAR;
        check("seed " + seed + ": " + matrix, matrix, restored, rows, cols, batch, order, random);
    }

    private static void checkRaw(long seed, SplittableRandom random, int rows, int cols, FloatType type, int batch) {
        float[] weights = gaussian(random, rows * cols, 1);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment elements = TestData.encode(weights, type, arena);
            float[] widened = new float[rows * cols];
            for (int i = 0; i < widened.length; i++) {
                widened[i] = type.read(elements, i);
            }
            check("seed " + seed + ": " + type + " " + rows + " x " + cols, FloatMatrix.of(elements, type, rows, cols),
                    widened, rows, cols, batch, MatrixReference.Order.NATURAL, random);
        }
    }

    /** Every call shape against the reference, the spec's order and each other bit for bit. */
    private static void check(String what, WeightMatrix matrix, float[] w, int rows, int cols, int batch,
                              MatrixReference.Order order, SplittableRandom random) {
        float[] x = gaussian(random, batch * cols, 1);
        if (random.nextInt(4) == 0) {
            x[random.nextInt(x.length)] = 0f;
        }
        float[] y = new float[batch * rows];
        matrix.matMul(x, batch, y);
        MatrixReference.assertWithinBound(what, w, rows, cols, x, batch, y);
        assertArrayEquals(MatrixReference.inSpecOrder(w, rows, cols, x, batch, lanes(), order), y,
                what + ": the spec's summation order at " + MatVecKernelProvider.kernels().name());
        // The same bits from every call: row b of matMul is matVec of row b of x; executors; segments.
        for (int b = 0; b < batch; b++) {
            float[] single = new float[rows];
            matrix.matVec(Arrays.copyOfRange(x, b * cols, (b + 1) * cols), single);
            assertArrayEquals(Arrays.copyOfRange(y, b * rows, (b + 1) * rows), single, what + ": matVec of row " + b);
        }
        float[] parallel = new float[batch * rows];
        matrix.matMul(x, batch, parallel, pool);
        assertArrayEquals(y, parallel, what + ": on an executor");
        try (Arena arena = Arena.ofShared()) {
            // Unaligned on purpose: one byte into the allocation.
            MemorySegment xs = arena.allocate(4L * x.length + 1).asSlice(1, 4L * x.length);
            MemorySegment ys = arena.allocate(4L * y.length + 3).asSlice(3, 4L * y.length);
            MemorySegment.copy(x, 0, xs, WeightMatrix.FLOAT, 0, x.length);
            matrix.matMul(xs, batch, ys, random.nextBoolean() ? pool : null);
            float[] fromSegments = new float[y.length];
            MemorySegment.copy(ys, WeightMatrix.FLOAT, 0, fromSegments, 0, y.length);
            assertArrayEquals(y, fromSegments, what + ": segments");
        }
    }

    @Test
    void badCallsThrowAndLeaveYUntouched() {
        Nf4Matrix matrix = Nf4Matrix.quantize(gaussian(new SplittableRandom(1), 6 * 10, 1), 6, 10, 4, true);
        float[] x = new float[10];
        float[] sentinel = new float[12];
        Arrays.fill(sentinel, 42f);
        float[] y = sentinel.clone();
        assertBad(() -> matrix.matVec(new float[9], y), "x holds 9 floats");
        assertBad(() -> matrix.matVec(x, new float[5]), "y holds 5 floats");
        assertBad(() -> matrix.matMul(x, 2, y), "x holds 10 floats, not 2 x 10");
        assertBad(() -> matrix.matMul(new float[20], 0, y), "batch must be at least 1");
        assertBad(() -> matrix.matMul(new float[20], 2, new float[11]), "y holds 11 floats");
        float[] both = new float[10];
        FloatMatrix square = FloatMatrix.of(new float[100], 10, 10);
        assertBad(() -> square.matVec(both, both), "the same array");
        assertArrayEquals(sentinel, y, "y untouched");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ys = arena.allocate(4 * 6);
            ys.fill((byte) 7);
            assertBad(() -> matrix.matVec(arena.allocate(4 * 11), ys), "x holds 11 floats");
            assertBad(() -> matrix.matVec(arena.allocate(4 * 10 + 2), ys), "whole floats");
            assertBad(() -> matrix.matVec(arena.allocate(40), ys.asReadOnly()), "read-only");
            for (byte b : ys.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)) {
                assertEquals(7, b, "y segment untouched");
            }
        }
        assertThrows(NullPointerException.class, () -> matrix.matVec(null, y));
        // Construction: sizes that do not fit.
        MemorySegment codes = MemorySegment.ofArray(new byte[30]);
        assertBad(() -> Nf4Matrix.of(codes, MemorySegment.ofArray(new float[14]), 6, 10, 4), "absmax hold 56 bytes");
        assertBad(() -> Nf4Matrix.of(MemorySegment.ofArray(new byte[29]), MemorySegment.ofArray(new float[15]), 6, 10, 4),
                "codes hold 29 bytes");
        assertBad(() -> Nf4Matrix.of(codes, MemorySegment.ofArray(new float[15]), 6, 10, 3), "block size");
        assertBad(() -> Nf4Matrix.of(codes, MemorySegment.ofArray(new float[15]), 0, 10, 4), "at least one row");
        assertBad(() -> Nf4Matrix.doubleQuantized(codes, MemorySegment.ofArray(new byte[15]),
                MemorySegment.ofArray(new float[1]), 0f, new float[255], 6, 10, 4), "255 entries");
        assertBad(() -> FloatMatrix.of(MemorySegment.ofArray(new short[59]), FloatType.BF16, 6, 10), "needs 120");
    }

    private static void assertBad(Executable call, String message) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(message), "message '" + e.getMessage() + "' lacks '" + message + "'");
    }
}
