package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.qnat.nf4.TestData.Shape;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * MSE scales against absmax scales, with the error computed here from the definition (level * scale in
 * float32, the difference in float64). Equality of the vector and scalar kernels is KernelEquivalenceTest's.
 */
class MseScalesTest {
    private static final int BLOCK = 64;
    private static final int BLOCKS = 20_000;

    /** The targets on generated weights: at most 0.93 of absmax's RMSE on N(0, 1), 0.95 on Laplace. */
    @Test
    void mseScalesCutTheErrorOfGaussianAndLaplaceBlocks() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        float[] gaussian = new float[BLOCK * BLOCKS];
        float[] laplace = new float[BLOCK * BLOCKS];
        for (int i = 0; i < gaussian.length; i++) {
            gaussian[i] = (float) random.nextGaussian();
            double u = random.nextDouble() - 0.5;
            laplace[i] = (float) (-Math.signum(u) * Math.log(1 - 2 * Math.abs(u)));
        }
        double gaussianRatio = Math.sqrt(totalError(gaussian, ScaleRule.MSE) / totalError(gaussian, ScaleRule.ABSMAX));
        double laplaceRatio = Math.sqrt(totalError(laplace, ScaleRule.MSE) / totalError(laplace, ScaleRule.ABSMAX));
        String label = "seed " + seed + " (-Dqnat.test.seed=" + seed + "): RMSE against absmax's, N(0, 1) "
                + gaussianRatio + ", Laplace " + laplaceRatio;
        System.out.println(label);
        assertTrue(gaussianRatio <= 0.93, label);
        assertTrue(laplaceRatio <= 0.95, label);
    }

    /**
     * On every block of every generated shape and block size, MSE's squared error is at most absmax's,
     * give or take float32 rounding: 1e-6 of the block's energy (numpy measured at most 1.1e-9 of it).
     */
    @Test
    void mseIsNeverWorseThanAbsmaxOnAnyBlock() {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int blockSize : new int[] {2, 6, 30, 32, 64, 66, 128, 4096}) {
            for (Shape shape : Shape.values()) {
                for (FloatType type : FloatType.values()) {
                    int length = blockSize * 12 + random.nextInt(blockSize);
                    float[] values = TestData.values(shape, length, blockSize, random);
                    float[] exact = exactly(values, type);
                    float[][] byMse = quantized(values, type, blockSize, ScaleRule.MSE);
                    float[][] byAbsmax = quantized(values, type, blockSize, ScaleRule.ABSMAX);
                    for (int start = 0, b = 0; start < length; start += blockSize, b++) {
                        int end = Math.min(length, start + blockSize);
                        double mse = blockError(exact, byMse[0], start, end);
                        double absmax = blockError(exact, byAbsmax[0], start, end);
                        double energy = blockError(exact, new float[length], start, end);
                        if (mse > absmax + 1e-6 * energy) {
                            fail("block " + b + ": squared error " + mse + " with MSE scale " + byMse[1][b]
                                    + ", " + absmax + " with absmax " + byAbsmax[1][b] + "; seed " + seed
                                    + " (-Dqnat.test.seed=" + seed + "), block " + blockSize + ", " + shape + ", " + type);
                        }
                    }
                }
            }
        }
    }

    @Test
    void absmaxRuleIsThePlainCodec() {
        SplittableRandom random = new SplittableRandom(7);
        float[] values = TestData.values(Shape.NORMAL, 1000, 64, random);
        byte[] codes = new byte[500];
        float[] absmax = new float[16];
        byte[] ruleCodes = new byte[500];
        float[] ruleAbsmax = new float[16];
        Nf4.quantize(values, 64, codes, absmax);
        Nf4.quantize(values, 64, ruleCodes, ruleAbsmax, ScaleRule.ABSMAX);
        assertArrayEquals(codes, ruleCodes);
        assertArrayEquals(absmax, ruleAbsmax);
    }

    /** Double quantization's path: scales first, stored another way, then codes against the stored ones. */
    @Test
    void scalesThenCodesEqualsTheOneCall() {
        SplittableRandom random = new SplittableRandom(11);
        float[] values = TestData.values(Shape.HEAVY_TAILED, 5000, 64, random);
        float[][] together = quantized(values, FloatType.F32, 64, ScaleRule.MSE);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = TestData.encode(values, FloatType.F32, arena);
            long blocks = Nf4.blockCount(values.length, 64);
            MemorySegment scales = arena.allocate(4 * blocks);
            MemorySegment codes = arena.allocate(Nf4.packedSize(values.length));
            Nf4.mseScales(src, FloatType.F32, 64, 0, blocks, scales);
            QuantizationError error = new QuantizationError();
            Nf4.encodeBlocks(src, FloatType.F32, 64, 0, blocks, scales, codes, error);
            assertArrayEquals(together[1], scales.toArray(TestData.FLOAT));
            float[] restored = new float[values.length];
            Nf4.dequantize(codes.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), scales.toArray(TestData.FLOAT), 64,
                    restored);
            assertArrayEquals(together[0], restored);
            assertEquals(blockError(values, restored, 0, values.length), error.sumSquaredError(),
                    1e-6 * error.sumSquaredError(), "measured as compare does, within 1e-6");
        }
    }

    @Test
    void aNanStopsTheMseCallsWithItsIndex() {
        float[] values = new float[300];
        values[17] = 1f;
        values[200] = Float.NaN;
        byte[] codes = new byte[150];
        float[] scales = new float[5];
        NonFiniteValueException e = assertThrows(NonFiniteValueException.class,
                () -> Nf4.quantize(values, 64, codes, scales, ScaleRule.MSE));
        assertEquals(200, e.index());
        assertArrayEquals(new float[5], scales, "nothing written");
        MemorySegment src = MemorySegment.ofArray(values);
        assertEquals(200, assertThrows(NonFiniteValueException.class,
                () -> Nf4.mseScales(src, FloatType.F32, 64, 0, 5, MemorySegment.ofArray(scales))).index());
    }

    private static double totalError(float[] values, ScaleRule rule) {
        return blockError(values, quantized(values, FloatType.F32, BLOCK, rule)[0], 0, values.length);
    }

    /** Values as {@code type} holds them, widened back to float. */
    private static float[] exactly(float[] values, FloatType type) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment encoded = TestData.encode(values, type, arena);
            float[] exact = new float[values.length];
            for (int i = 0; i < exact.length; i++) {
                exact[i] = type.read(encoded, i);
            }
            return exact;
        }
    }

    /** Reconstruction (level * scale, by the definition) and scales of {@code values} quantized by {@code rule}. */
    private static float[][] quantized(float[] values, FloatType type, int blockSize, ScaleRule rule) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = TestData.encode(values, type, arena);
            long blocks = Nf4.blockCount(values.length, blockSize);
            MemorySegment codes = arena.allocate(Nf4.packedSize(values.length));
            MemorySegment scales = arena.allocate(4 * blocks);
            Nf4.quantize(src, type, blockSize, codes, scales, rule);
            float[] restored = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                int packed = codes.get(java.lang.foreign.ValueLayout.JAVA_BYTE, i / 2);
                int code = i % 2 == 0 ? packed & 0xF : (packed >>> 4) & 0xF;
                restored[i] = Nf4Codebook.level(code) * scales.getAtIndex(TestData.FLOAT, i / blockSize);
            }
            return new float[][] {restored, scales.toArray(TestData.FLOAT)};
        }
    }

    private static double blockError(float[] exact, float[] restored, int from, int to) {
        double sum = 0;
        for (int i = from; i < to; i++) {
            double d = (double) exact[i] - restored[i];
            sum += d * d;
        }
        return sum;
    }
}
