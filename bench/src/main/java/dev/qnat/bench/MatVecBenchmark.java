package dev.qnat.bench;

import dev.qnat.nf4.FloatMatrix;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4Matrix;
import dev.qnat.nf4.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.ForkJoinPool;
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
 * One thread (or {@code threads}), an 11008 x 4096 matrix (Llama-7B's MLP up-projection), weights N(0, 0.02): NF4 at block
 * 64 with double quantization against the same weights as F32 and BF16, with the project's own kernels.
 * {@code batch} 1 is matVec, more is matMul. Scores are per call: divide by rows * cols for ns per
 * weight; GFLOP/s = 2 * rows * cols * batch / score.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgs = {"--add-modules", "jdk.incubator.vector", "-Xmx4g"})
public class MatVecBenchmark {
    @Param({"11008"})
    public int rows;

    @Param({"4096"})
    public int cols;

    @Param({"1", "32", "128"})
    public int batch;

    @Param({"NF4", "F32", "BF16"})
    public String weights;

    /** 1: the calling thread; more: row ranges on a pool of that many threads. */
    @Param({"1"})
    public int threads;

    private ForkJoinPool pool;

    private WeightMatrix matrix;
    private Arena arena;
    private float[] x;
    private float[] y;

    @Setup(Level.Trial)
    public void setUp() {
        SplittableRandom random = new SplittableRandom(14);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (random.nextGaussian() * 0.02);
        }
        arena = Arena.ofShared();
        matrix = switch (weights) {
            case "NF4" -> Nf4Matrix.quantize(w, rows, cols, 64, true);
            case "F32" -> FloatMatrix.of(copy(w, FloatType.F32), FloatType.F32, rows, cols);
            case "BF16" -> FloatMatrix.of(copy(w, FloatType.BF16), FloatType.BF16, rows, cols);
            default -> throw new IllegalArgumentException(weights);
        };
        x = new float[batch * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) random.nextGaussian();
        }
        y = new float[batch * rows];
        pool = threads > 1 ? new ForkJoinPool(threads) : null;
    }

    private MemorySegment copy(float[] w, FloatType type) {
        MemorySegment segment = arena.allocate((long) w.length * type.byteSize(), 64);
        for (int i = 0; i < w.length; i++) {
            type.write(segment, i, w[i]);
        }
        return segment;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
        if (pool != null) {
            pool.shutdownNow();
        }
    }

    @Benchmark
    public float[] multiply() {
        matrix.matMul(x, batch, y, pool);
        return y;
    }
}
