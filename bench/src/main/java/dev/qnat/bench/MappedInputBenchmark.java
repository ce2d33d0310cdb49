package dev.qnat.bench;

import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
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
 * What reading a mapped file through copied chunks costs: {@link Nf4#quantizeBlocks} (as the QNAT writer
 * calls it) on 64 Mi elements of a mapped temp file, staged, against the same bytes in native memory.
 * Scores are ns per element.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 4, time = 2)
@Measurement(iterations = 6, time = 2)
@Fork(value = 1, jvmArgsPrepend = {"-Xms1g", "-Xmx1g", "-XX:+AlwaysPreTouch"})
public class MappedInputBenchmark {
    private static final int ELEMENTS = 64 << 20;
    private static final int BLOCK_SIZE = 64;

    @Param({"mapped", "native"})
    public String source;

    @Param({"F32", "BF16"})
    public FloatType type;

    private Arena arena;
    private Path file;
    private MemorySegment values;
    private MemorySegment codes;
    private MemorySegment absmax;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        arena = Arena.ofShared();
        MemorySegment generated = arena.allocate((long) ELEMENTS * type.byteSize(), 64);
        SplittableRandom random = new SplittableRandom(42);
        for (long i = 0; i < ELEMENTS; i++) {
            type.write(generated, i, (float) (random.nextGaussian() * 0.02));
        }
        if (source.equals("native")) {
            values = generated;
        } else {
            file = Files.createTempFile("qnat-bench", ".bin");
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                channel.write(generated.asByteBuffer());
                values = channel.map(FileChannel.MapMode.READ_ONLY, 0, generated.byteSize(), arena);
            }
        }
        codes = arena.allocate(Nf4.packedSize(ELEMENTS), 64);
        absmax = arena.allocate(4 * Nf4.blockCount(ELEMENTS, BLOCK_SIZE), 64);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        arena.close();
        if (file != null) {
            Files.delete(file);
        }
    }

    @Benchmark
    @OperationsPerInvocation(ELEMENTS)
    public MemorySegment quantizeBlocks() {
        Nf4.quantizeBlocks(values, type, BLOCK_SIZE, 0, Nf4.blockCount(ELEMENTS, BLOCK_SIZE), codes, absmax);
        return codes;
    }
}
