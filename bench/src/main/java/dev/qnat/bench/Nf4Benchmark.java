package dev.qnat.bench;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.nf4.kernel.Nf4KernelProvider;
import dev.qnat.nf4.kernel.Nf4Kernels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One thread, block 64, weights drawn from N(0, 0.02). {@code quantize} is the public call
 * {@link Nf4#quantize}, which promises to write nothing when the input holds a NaN. The vector width is
 * the fork's {@code -Dqnat.vector.bits} (bench/run.sh runs each width); {@code impl=scalar} is the
 * reference, and needs {@code -Dqnat.vector.bits=scalar}. Scores are per call; divide by {@code elements} for ns per element.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
// Prepended: the command line's -jvmArgsAppend (the width) replaces the appended ones. The qnat JVM flags
// are inherited from the host JVM, which bench/run.sh starts with @bench/target/qnat.jvmargs.
@Fork(value = 1, jvmArgsPrepend = {"-Xms1g", "-Xmx1g", "-XX:+AlwaysPreTouch"})
public class Nf4Benchmark {
    private static final int BLOCK_SIZE = 64;

    /** 1 Ki elements (4 KiB of F32, in L1), 256 Ki (1 MiB, in L2), 64 Mi (256 MiB, in memory). */
    @Param({"1024", "262144", "67108864"})
    public int elements;

    @Param({"vector", "scalar"})
    public String impl;

    /** The input type of quantize (F32 or BF16) and the output type of dequantize. */
    @Param({"F32", "BF16"})
    public FloatType type;

    private Arena arena;
    private Nf4Kernels kernels;
    private MemorySegment values;
    private MemorySegment codes;
    private MemorySegment absmax;
    private MemorySegment output;
    private MemorySegment terms;
    private long blocks;

    @Setup(Level.Trial)
    public void setUp() {
        kernels = Nf4KernelProvider.kernels();
        if (!kernels.name().startsWith(impl.equals("scalar") ? "scalar" : "panama")) {
            throw new IllegalStateException("impl=" + impl + " but this JVM runs the " + kernels.name()
                    + " kernels (impl=scalar needs -Dqnat.vector.bits=scalar)");
        }
        arena = Arena.ofShared();
        values = arena.allocate((long) elements * type.byteSize(), 64);
        output = arena.allocate((long) elements * type.byteSize(), 64);
        codes = arena.allocate(Nf4.packedSize(elements), 64);
        blocks = Nf4.blockCount(elements, BLOCK_SIZE);
        absmax = arena.allocate(4 * blocks, 64);
        terms = arena.allocate(12 * blocks, 64);
        SplittableRandom random = new SplittableRandom(42);
        ValueLayout.OfFloat f32 = ValueLayout.JAVA_FLOAT.withOrder(ByteOrder.LITTLE_ENDIAN);
        ValueLayout.OfShort f16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < elements; i++) {
            float x = (float) (random.nextGaussian() * 0.02);
            if (type == FloatType.F32) {
                values.setAtIndex(f32, i, x);
            } else {
                values.setAtIndex(f16, i, type.floatToHalfBits(x));
            }
        }
        Nf4.quantize(values, type, BLOCK_SIZE, codes, absmax);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public MemorySegment quantize() {
        Nf4.quantize(values, type, BLOCK_SIZE, codes, absmax);
        return codes;
    }

    @Benchmark
    public MemorySegment dequantize() {
        kernels.dequantize(codes, absmax, BLOCK_SIZE, elements, 0, blocks, output, type);
        return output;
    }

    /** The NaN/infinity scan alone: what {@code quantize} pays for its nothing-written-on-failure promise. */
    @Benchmark
    public long scan() {
        return kernels.firstNonFinite(values, type, 0, elements);
    }

    /**
     * The block work with the accuracy figures measured as it goes, as {@code qnat quantize} runs it by
     * default (per-block terms kept, as for double quantization).
     */
    @Benchmark
    public QuantizationError quantizeMeasured() {
        QuantizationError error = new QuantizationError();
        kernels.quantizeMeasured(values, type, elements, BLOCK_SIZE, 0, blocks, codes, absmax, error, terms);
        return error;
    }

    /** The block work alone, as the QNAT writer runs it (its output is a temp file discarded on failure). */
    @Benchmark
    public MemorySegment quantizeBlocks() {
        kernels.quantize(values, type, elements, BLOCK_SIZE, 0, blocks, codes, absmax);
        return codes;
    }
}
