package dev.qnat.bench;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.nf4.ScaleRule;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The codec's public calls on one thread, block 64, weights drawn from N(0, 0.02): {@link Nf4#quantize}
 * (the NaN/infinity scan, then the blocks, so that nothing is written on failure), {@link Nf4#quantizeBlocks}
 * (the blocks alone, as the QNAT writer runs them), the same measuring the error as it goes (the default
 * {@code qnat quantize} path, per-block terms kept as for double quantization), {@code quantize} with MSE
 * scales and {@link Nf4#dequantize}.
 * Each invocation handles {@value #ELEMENTS_PER_INVOCATION} elements, in calls of {@code elements} each,
 * so that every score is ns per element. The vector width is the fork's {@code -Dqnat.vector.bits}
 * (bench/run.sh runs each width); {@code impl=scalar} is the reference, with {@code -Dqnat.vector.bits=scalar}.
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
    /** The largest {@code elements}: one call of it per invocation, 2^16 calls of the smallest. */
    static final int ELEMENTS_PER_INVOCATION = 1 << 26;

    /** 1 Ki elements (4 KiB of F32, in L1), 256 Ki (1 MiB, in L2), 64 Mi (256 MiB, in memory). */
    @Param({"1024", "262144", "67108864"})
    public int elements;

    @Param({"vector", "scalar"})
    public String impl;

    /** The input type of quantize (F32 or BF16) and the output type of dequantize. */
    @Param({"F32", "BF16"})
    public FloatType type;

    private Arena arena;
    private MemorySegment values;
    private MemorySegment codes;
    private MemorySegment absmax;
    private MemorySegment output;
    private MemorySegment terms;
    private long blocks;
    private int calls;

    @Setup(Level.Trial)
    public void setUp() {
        if (!Nf4.kernelName().startsWith(impl.equals("scalar") ? "scalar" : "panama")) {
            throw new IllegalStateException("impl=" + impl + " but this JVM runs the " + Nf4.kernelName()
                    + " kernels (impl=scalar needs -Dqnat.vector.bits=scalar)");
        }
        if (ELEMENTS_PER_INVOCATION % elements != 0) {
            throw new IllegalStateException("elements must divide " + ELEMENTS_PER_INVOCATION + ", got " + elements);
        }
        calls = ELEMENTS_PER_INVOCATION / elements;
        arena = Arena.ofShared();
        values = arena.allocate((long) elements * type.byteSize(), 64);
        output = arena.allocate((long) elements * type.byteSize(), 64);
        codes = arena.allocate(Nf4.packedSize(elements), 64);
        blocks = Nf4.blockCount(elements, BLOCK_SIZE);
        absmax = arena.allocate(4 * blocks, 64);
        terms = arena.allocate(12 * blocks, 64);
        SplittableRandom random = new SplittableRandom(42);
        for (long i = 0; i < elements; i++) {
            type.write(values, i, (float) (random.nextGaussian() * 0.02));
        }
        Nf4.quantize(values, type, BLOCK_SIZE, codes, absmax);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    @OperationsPerInvocation(ELEMENTS_PER_INVOCATION)
    public MemorySegment quantize() {
        for (int c = 0; c < calls; c++) {
            Nf4.quantize(values, type, BLOCK_SIZE, codes, absmax);
        }
        return codes;
    }

    /** The block work alone, as the QNAT writer runs it (its output is a temp file discarded on failure). */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS_PER_INVOCATION)
    public MemorySegment quantizeBlocks() {
        for (int c = 0; c < calls; c++) {
            Nf4.quantizeBlocks(values, type, BLOCK_SIZE, 0, blocks, codes, absmax);
        }
        return codes;
    }

    /**
     * The block work with the accuracy figures measured as it goes, as {@code qnat quantize} runs it by
     * default (per-block terms kept, as for double quantization; each call writes them again).
     */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS_PER_INVOCATION)
    public QuantizationError quantizeMeasured() {
        QuantizationError error = new QuantizationError();
        for (int c = 0; c < calls; c++) {
            Nf4.quantizeBlocks(values, type, BLOCK_SIZE, 0, blocks, codes, absmax, error, terms);
        }
        return error;
    }

    /** {@code quantize} with the MSE scale search ({@code --scales mse}), the scan included. */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS_PER_INVOCATION)
    public MemorySegment quantizeMse() {
        for (int c = 0; c < calls; c++) {
            Nf4.quantize(values, type, BLOCK_SIZE, codes, absmax, ScaleRule.MSE);
        }
        return codes;
    }

    @Benchmark
    @OperationsPerInvocation(ELEMENTS_PER_INVOCATION)
    public MemorySegment dequantize() {
        for (int c = 0; c < calls; c++) {
            Nf4.dequantize(codes, absmax, BLOCK_SIZE, output, type);
        }
        return output;
    }
}
