package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.TestData.Shape;
import dev.qnat.nf4.kernel.Nf4Kernels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The error figures measured while quantizing, and those of two float arrays, against a plain
 * double-precision loop written here from the definition in {@link QuantizationError}: within 1e-6
 * relative, at every width (tag "widths"), on every value shape, block size and input type, with tails.
 */
@Tag("widths")
class ErrorMeasureTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final double RELATIVE = 1e-6;

    /** sum d^2, sum x^2, max |d| with d = x - (float) (level * absmax), all in double. */
    private static double[] reference(float[] x, FloatType type, byte[] codes, float[] absmax, int blockSize) {
        double error = 0;
        double signal = 0;
        double max = 0;
        for (int i = 0; i < x.length; i++) {
            float value = type == FloatType.F32 ? x[i] : type.halfBitsToFloat(type.floatToHalfBits(x[i]));
            int code = (codes[i / 2] >> (4 * (i & 1))) & 0xF;
            float restored = Nf4Codebook.level(code) * absmax[i / blockSize];
            double d = (double) value - restored;
            error += d * d;
            signal += (double) value * value;
            max = Math.max(max, Math.abs(d));
        }
        return new double[] {error, signal, max};
    }

    private static void assertClose(double expected, double actual, String what) {
        assertTrue(Math.abs(expected - actual) <= RELATIVE * Math.abs(expected) || expected == actual,
                what + ": expected " + expected + ", measured " + actual);
    }

    @Test
    void measuredWhileQuantizingEqualsTheDefinition() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        try (Arena arena = Arena.ofShared()) {
            for (int blockSize : new int[] {2, 6, 64, 66, 256, 4096}) {
                for (Shape shape : Shape.values()) {
                    for (FloatType type : FloatType.values()) {
                        int count = blockSize * (1 + random.nextInt(40)) + random.nextInt(blockSize);
                        float[] x = TestData.values(shape, count, blockSize, random);
                        MemorySegment src = TestData.encode(x, type, arena);
                        for (int i = 0; i < count; i++) {
                            x[i] = type.read(src, i);
                        }
                        long blocks = Nf4.blockCount(count, blockSize);
                        byte[] plainCodes = new byte[(int) Nf4.packedSize(count)];
                        float[] plainAbsmax = new float[(int) blocks];
                        Nf4.quantize(src, type, blockSize, MemorySegment.ofArray(plainCodes),
                                MemorySegment.ofArray(plainAbsmax));
                        // The public call, on the kernels this JVM chose, then the scalar reference's own pass.
                        for (Nf4Kernels kernels : new Nf4Kernels[] {null, BothKernels.SCALAR}) {
                            byte[] codes = new byte[plainCodes.length];
                            float[] absmax = new float[plainAbsmax.length];
                            QuantizationError measured = new QuantizationError();
                            MemorySegment terms = arena.allocate(12 * blocks);
                            terms.fill((byte) 0x7F); // left from before: the terms are written, not added to
                            if (kernels == null) {
                                Nf4.quantizeBlocks(src, type, blockSize, 0, blocks, MemorySegment.ofArray(codes),
                                        MemorySegment.ofArray(absmax), measured, terms);
                            } else {
                                kernels.quantizeMeasured(src, type, count, blockSize, 0, blocks,
                                        MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), measured, terms);
                            }
                            String what = "seed " + seed + ", " + shape + ", " + type + ", block " + blockSize + ", "
                                    + count + " elements, " + (kernels == null ? Nf4.kernelName() : kernels.name());
                            assertArrayEquals(plainCodes, codes, what + ": the measured pass writes the same codes");
                            assertArrayEquals(plainAbsmax, absmax, what + ": and the same absmax");
                            double[] expected = reference(x, FloatType.F32, codes, absmax, blockSize);
                            assertEquals(count, measured.count(), what);
                            assertClose(expected[0], measured.sumSquaredError(), what + ", sum d^2");
                            assertClose(expected[1], measured.sumSquaredSignal(), what + ", sum x^2");
                            assertClose(expected[2], measured.maxAbsError(), what + ", max |d|");
                            checkTerms(x, codes, absmax, blockSize, terms, what);
                        }
                    }
                }
            }
        }
    }

    /** Each block's stored sum x l, sum l^2 and max |d|. */
    private static void checkTerms(float[] x, byte[] codes, float[] absmax, int blockSize, MemorySegment terms,
                                   String what) {
        for (int b = 0; b < absmax.length; b++) {
            double cross = 0;
            double levels = 0;
            double max = 0;
            for (int i = b * blockSize; i < Math.min(x.length, (b + 1) * blockSize); i++) {
                float level = Nf4Codebook.level((codes[i / 2] >> (4 * (i & 1))) & 0xF);
                cross += (double) x[i] * level;
                levels += (double) level * level;
                max = Math.max(max, Math.abs((double) x[i] - level * absmax[b]));
            }
            // Stored as floats: a relative 1e-6 allows for their rounding.
            double scale = Math.abs(absmax[b]) * blockSize + Double.MIN_VALUE;
            assertTrue(Math.abs(cross - terms.getAtIndex(F32, 3L * b)) <= 1e-6 * Math.max(Math.abs(cross), scale * 1e-3),
                    what + ", block " + b + " sum x l: " + cross + " against " + terms.getAtIndex(F32, 3L * b));
            assertClose(levels, terms.getAtIndex(F32, 3L * b + 1), what + ", block " + b + " sum l^2");
            assertClose(max, terms.getAtIndex(F32, 3L * b + 2), what + ", block " + b + " max |d|");
        }
    }

    @Test
    void errorAtTheDoubleQuantizedAbsmaxEqualsMeasuringAgain() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        try (Arena arena = Arena.ofShared()) {
            for (Shape shape : new Shape[] {Shape.NORMAL, Shape.UNIFORM, Shape.HEAVY_TAILED, Shape.ZERO_BLOCKS}) {
                for (int blockSize : new int[] {64, 128}) {
                    int count = blockSize * (300 + random.nextInt(700)) + random.nextInt(blockSize);
                    float[] x = TestData.values(shape, count, blockSize, random);
                    MemorySegment src = TestData.encode(x, FloatType.F32, arena);
                    long blocks = Nf4.blockCount(count, blockSize);
                    MemorySegment codes = arena.allocate(Nf4.packedSize(count));
                    MemorySegment absmax = arena.allocate(4 * blocks);
                    MemorySegment terms = arena.allocate(12 * blocks);
                    QuantizationError measured = new QuantizationError();
                    Nf4.quantizeBlocks(src, FloatType.F32, blockSize, 0, blocks, codes, absmax, measured, terms);
                    MemorySegment dqCodes = arena.allocate(blocks);
                    MemorySegment nested = arena.allocate(4 * DoubleQuantization.groupCount(blocks));
                    float offset = DoubleQuantization.quantize(absmax, blocks, dqCodes, nested);
                    MemorySegment stored = arena.allocate(4 * blocks);
                    DoubleQuantization.dequantize(dqCodes, nested, offset, DoubleQuantization.table(), blocks, stored);

                    QuantizationError atStored = Nf4.errorAtStoredAbsmax(measured, terms, absmax, stored, blocks, src,
                            FloatType.F32, blockSize, codes);
                    double[] expected = reference(x, FloatType.F32, codes.toArray(ValueLayout.JAVA_BYTE),
                            stored.toArray(F32), blockSize);
                    String what = "seed " + seed + ", " + shape + ", block " + blockSize + ", " + count + " elements";
                    assertClose(expected[0], atStored.sumSquaredError(), what + ", sum d^2");
                    assertClose(expected[1], atStored.sumSquaredSignal(), what + ", sum x^2");
                    assertEquals(expected[2], atStored.maxAbsError(), what + ", max |d| (measured again, exactly)");
                }
            }
        }
    }

    @Test
    void differenceOfTwoArraysEqualsTheDefinition() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (Shape shape : Shape.values()) {
            int count = random.nextInt(1, 5000);
            float[] a = TestData.values(shape, count, 64, random);
            float[] b = new float[count];
            for (int i = 0; i < count; i++) {
                b[i] = a[i] * (float) (1 + random.nextGaussian() * 0.01);
            }
            double error = 0;
            double signal = 0;
            double max = 0;
            for (int i = 0; i < count; i++) {
                double d = (double) a[i] - b[i];
                error += d * d;
                signal += (double) a[i] * a[i];
                max = Math.max(max, Math.abs(d));
            }
            QuantizationError measured = new QuantizationError();
            Nf4.measureError(MemorySegment.ofArray(a), MemorySegment.ofArray(b), measured);
            String what = "seed " + seed + ", " + shape + ", " + count + " elements";
            assertEquals(count, measured.count());
            assertClose(error, measured.sumSquaredError(), what + ", sum d^2");
            assertClose(signal, measured.sumSquaredSignal(), what + ", sum x^2");
            assertClose(max, measured.maxAbsError(), what + ", max |d|");
        }
    }
}
