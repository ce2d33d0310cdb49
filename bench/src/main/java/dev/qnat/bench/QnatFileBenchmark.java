package dev.qnat.bench;

import dev.qnat.format.DType;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.format.QnatWriter;
import dev.qnat.format.TensorToWrite;
import dev.qnat.nf4.FloatType;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
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
 * The file path end to end: a BF16 checkpoint of {@code gib} GiB in 64 tensors (a mapped file of
 * N(0, 0.02) values) quantized into a QNAT file at block 64 with double quantization, and that file
 * mapped and dequantized back to BF16. One call is one whole file; the JVM's heap stays at 1 GiB.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 5)
@Fork(value = 1, jvmArgsPrepend = {"-Xms1g", "-Xmx1g", "-XX:+AlwaysPreTouch"})
public class QnatFileBenchmark {
    private static final int TENSORS = 64;

    @Param({"2"})
    public int gib;

    @Param({"1", "2"})
    public int threads;

    private Path dir;
    private Arena arena;
    private List<TensorToWrite> tensors;
    private Path output;
    private MemorySegment dequantized;
    private ExecutorService pool;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        dir = Files.createTempDirectory("qnat-bench");
        long elements = ((long) gib << 30) / 2;
        Path input = dir.resolve("input.bf16");
        try (RandomAccessFile file = new RandomAccessFile(input.toFile(), "rw")) {
            file.setLength(2 * elements);
        }
        arena = Arena.ofShared();
        MemorySegment data;
        try (FileChannel channel = FileChannel.open(input, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            data = channel.map(FileChannel.MapMode.READ_WRITE, 0, 2 * elements, arena);
        }
        ValueLayout.OfShort half = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        SplittableRandom random = new SplittableRandom(7);
        for (long i = 0; i < elements; i++) {
            data.setAtIndex(half, i, FloatType.BF16.floatToHalfBits((float) (random.nextGaussian() * 0.02)));
        }
        data.force();
        tensors = new ArrayList<>();
        long perTensor = elements / TENSORS;
        for (int t = 0; t < TENSORS; t++) {
            MemorySegment slice = data.asSlice(2 * perTensor * t, 2 * perTensor);
            tensors.add(TensorToWrite.nf4("layers." + t + ".weight", new long[] {perTensor / 4096, 4096}, DType.BF16,
                    slice, 64, true));
        }
        output = dir.resolve("model.qnat");
        dequantized = arena.allocate(2 * perTensor, 64);
        pool = Executors.newFixedThreadPool(threads);
        quantizeAndWrite();
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        pool.shutdownNow();
        arena.close();
        try (var files = Files.list(dir)) {
            for (Path p : files.toList()) {
                Files.delete(p);
            }
        }
        Files.delete(dir);
    }

    @Benchmark
    public Path quantizeAndWrite() throws IOException {
        QnatWriter.write(output, Map.of("producer", "bench"), tensors, threads, QnatWriter.Progress.NONE);
        return output;
    }

    @Benchmark
    public MemorySegment mapAndDequantize() throws Exception {
        try (QnatFile file = QnatFile.open(output)) {
            for (QnatTensor tensor : file.tensors()) {
                tensor.dequantize(dequantized, FloatType.BF16, threads == 1 ? null : pool);
            }
        }
        return dequantized;
    }
}
