package dev.qnat.nf4;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

/** Generated inputs for the codec tests: value shapes and their encoding in each FloatType. */
final class TestData {
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The kinds of values the equivalence and property tests draw. */
    enum Shape {
        NORMAL, UNIFORM, HEAVY_TAILED, ALL_EQUAL_BLOCKS, ZERO_BLOCKS, SIGNED_ZEROS, SUBNORMALS, MIDPOINTS,
        RECIPROCAL_OVERFLOW, HUGE
    }

    private TestData() {}

    static float[] values(Shape shape, int count, int blockSize, SplittableRandom random) {
        float[] x = new float[count];
        for (int i = 0; i < count; i++) {
            x[i] = switch (shape) {
                case NORMAL -> (float) (random.nextGaussian() * 0.02);
                case UNIFORM -> (float) random.nextDouble(-3, 3);
                case HEAVY_TAILED -> (float) (random.nextGaussian() * (random.nextInt(50) == 0 ? 40 : 1));
                case ALL_EQUAL_BLOCKS -> (float) ((i / blockSize % 3 - 1) * 0.75);
                case ZERO_BLOCKS -> (i / blockSize) % 2 == 0 ? 0f : (float) random.nextGaussian();
                case SIGNED_ZEROS -> random.nextBoolean() ? 0f : -0f;
                case SUBNORMALS -> Float.intBitsToFloat(random.nextInt(1, 0x00800000)) * (random.nextBoolean() ? 1 : -1);
                case MIDPOINTS -> midpointNeighbour(random);
                case RECIPROCAL_OVERFLOW -> (float) (random.nextGaussian() * 1e-39);
                case HUGE -> (float) (random.nextGaussian() * 3e37);
            };
        }
        if (shape == Shape.MIDPOINTS) {
            // Give most blocks an element at exactly +-1 so that absmax is 1 and v = x * 1 is x itself.
            for (int start = 0; start < count; start += blockSize) {
                if (random.nextInt(4) != 0) {
                    x[start + random.nextInt(Math.min(blockSize, count - start))] = random.nextBoolean() ? 1f : -1f;
                }
            }
        }
        return x;
    }

    /** A threshold, or one ulp either side of it, times a random power of two scale kept exact. */
    private static float midpointNeighbour(SplittableRandom random) {
        float m = Nf4Codebook.midpoint(random.nextInt(15));
        return switch (random.nextInt(3)) {
            case 0 -> m;
            case 1 -> Math.nextUp(m);
            default -> Math.nextDown(m);
        };
    }

    /** The values stored as {@code type} (rounded to nearest for F16/BF16; overflow to infinity becomes 0). */
    static MemorySegment encode(float[] values, FloatType type, Arena arena) {
        MemorySegment segment = arena.allocate(Math.max(1, (long) values.length * type.byteSize()), 64)
                .asSlice(0, (long) values.length * type.byteSize());
        for (int i = 0; i < values.length; i++) {
            if (type == FloatType.F32) {
                segment.setAtIndex(FLOAT, i, values[i]);
            } else {
                short bits = type.floatToHalfBits(values[i]);
                if (!Float.isFinite(type.halfBitsToFloat(bits))) {
                    bits = 0;
                }
                segment.setAtIndex(SHORT, i, bits);
            }
        }
        return segment;
    }

    static boolean isPrime(int n) {
        if (n < 2) {
            return false;
        }
        for (int d = 2; (long) d * d <= n; d++) {
            if (n % d == 0) {
                return false;
            }
        }
        return true;
    }

    /** The seed of a property test: -Dqnat.test.seed replays a failure, otherwise a fresh one. */
    static long seed() {
        String replay = System.getProperty("qnat.test.seed", "").strip();
        return replay.isEmpty() ? System.nanoTime() : Long.parseLong(replay);
    }
}
