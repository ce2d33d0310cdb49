package dev.qnat.cli;

import dev.qnat.format.Encoding;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatMatrix;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.Nf4Matrix;
import dev.qnat.nf4.WeightMatrix;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ForkJoinPool;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Time matVec/matMul on NF4 weights and on the same weights as F32 and BF16, as llama-bench does:",
            "each distinct 2-D NF4 shape of FILE, or without FILE generated Llama-7B shapes (4096 x 4096, 11008 x 4096,",
            "4096 x 11008, block 64, double quantization). ns/weight is the time of one call over rows * cols."})
final class BenchCommand implements Callable<Integer> {
    @Parameters(index = "0", arity = "0..1", paramLabel = "FILE", description = "A QNAT file (default: generated shapes).")
    Path file;

    @Option(names = "--threads", defaultValue = "1", paramLabel = "N", description = "Threads splitting the rows (default 1).")
    int threads;

    @Option(names = "--batch", split = ",", defaultValue = "1", paramLabel = "LIST",
            description = "Rows of x per call, e.g. 1,32,128 (default 1: matVec).")
    List<Integer> batches;

    @Option(names = "--json", description = "Print a JSON array of results.")
    boolean json;

    @Option(names = "--seconds", defaultValue = "1", paramLabel = "S", description = "Time per measurement (default 1).")
    double seconds;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    private static final int[][] LLAMA_SHAPES = {{4096, 4096}, {11008, 4096}, {4096, 11008}};

    /** One shape's three matrices over the same weights, and the NF4 form's stored bytes. */
    private record Subject(String name, int rows, int cols, WeightMatrix nf4, long nf4Bytes, WeightMatrix f32,
                           WeightMatrix bf16) {}

    @Override
    public Integer call() throws Exception {
        if (threads < 1 || seconds <= 0 || batches.stream().anyMatch(b -> b < 1)) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--threads and every --batch must be at least 1, --seconds above 0");
        }
        PrintWriter out = spec.commandLine().getOut();
        List<Map<String, Object>> results = new ArrayList<>();
        ForkJoinPool pool = threads > 1 ? new ForkJoinPool(threads) : null;
        try (Arena arena = Arena.ofShared()) {
            if (!json) {
                out.printf("kernels %s, %d thread%s; ns per weight = one call / (rows * cols)%n", Nf4Matrix.kernelName(),
                        threads, threads == 1 ? "" : "s");
                out.printf("%-24s %5s %10s %10s %10s %8s %8s %8s %8s %7s%n", "shape", "batch", "NF4 ns/w", "F32 ns/w",
                        "BF16 ns/w", "NF4 GB/s", "F32 GB/s", "NF4 GF/s", "F32 GF/s", "speedup");
            }
            if (file == null) {
                for (int[] shape : LLAMA_SHAPES) {
                    run(generated(shape[0], shape[1], arena), pool, out, results);
                }
            } else {
                try (QnatFile qnat = QnatFile.open(file)) {
                    List<Subject> subjects = fromFile(qnat, arena);
                    if (subjects.isEmpty()) {
                        throw new CommandLine.ParameterException(spec.commandLine(), file + " holds no 2-D NF4 tensor");
                    }
                    for (Subject subject : subjects) {
                        run(subject, pool, out, results);
                    }
                }
            }
        } finally {
            if (pool != null) {
                pool.shutdownNow();
            }
        }
        if (json) {
            out.println(toJson(results));
        }
        return Main.OK;
    }

    private Subject generated(int rows, int cols, Arena arena) {
        SplittableRandom random = new SplittableRandom(rows * 31L + cols);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (random.nextGaussian() * 0.02);
        }
        Nf4Matrix nf4 = Nf4Matrix.quantize(w, rows, cols, Nf4.DEFAULT_BLOCK_SIZE, true);
        nf4.dequantize(w); // F32 and BF16 hold the NF4 weights, so that all three compute the same product
        long blocks = Nf4.blockCount(w.length, Nf4.DEFAULT_BLOCK_SIZE);
        long bytes = Nf4.packedSize(w.length) + blocks + 4 * DoubleQuantization.groupCount(blocks) + 4 * 256;
        return subject("generated " + rows + " x " + cols, rows, cols, nf4, bytes, w, arena);
    }

    private static List<Subject> fromFile(QnatFile qnat, Arena arena) throws Exception {
        Map<String, Subject> byShape = new LinkedHashMap<>();
        for (QnatTensor tensor : qnat.tensors()) {
            long[] shape = tensor.shape();
            String key = Arrays.toString(shape);
            if (tensor.encoding() != Encoding.NF4 || shape.length != 2 || tensor.hasZeroPoints() || byShape.containsKey(key)) {
                continue;
            }
            int rows = (int) shape[0];
            int cols = (int) shape[1];
            byShape.put(key, subject(tensor.name(), rows, cols, tensor.matrix(), tensor.storedBytes(), tensor.toFloats(),
                    arena));
        }
        return new ArrayList<>(byShape.values());
    }

    private static Subject subject(String name, int rows, int cols, WeightMatrix nf4, long nf4Bytes, float[] w, Arena arena) {
        MemorySegment f32 = arena.allocate(4L * w.length, 64);
        MemorySegment bf16 = arena.allocate(2L * w.length, 64);
        for (int i = 0; i < w.length; i++) {
            FloatType.F32.write(f32, i, w[i]);
            FloatType.BF16.write(bf16, i, w[i]);
        }
        return new Subject(name, rows, cols, nf4, nf4Bytes, FloatMatrix.of(f32, FloatType.F32, rows, cols),
                FloatMatrix.of(bf16, FloatType.BF16, rows, cols));
    }

    private void run(Subject s, ForkJoinPool pool, PrintWriter out, List<Map<String, Object>> results) {
        double weights = (double) s.rows() * s.cols();
        for (int batch : batches) {
            float[] x = new float[batch * s.cols()];
            SplittableRandom random = new SplittableRandom(batch);
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) random.nextGaussian();
            }
            float[] y = new float[batch * s.rows()];
            double nf4 = time(s.nf4(), x, batch, y, pool);
            double f32 = time(s.f32(), x, batch, y, pool);
            double bf16 = time(s.bf16(), x, batch, y, pool);
            double flops = 2 * weights * batch;
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("name", s.name());
            row.put("rows", s.rows());
            row.put("cols", s.cols());
            row.put("batch", batch);
            row.put("threads", threads);
            row.put("kernels", Nf4Matrix.kernelName());
            row.put("nf4_ns_per_weight", nf4 / weights);
            row.put("f32_ns_per_weight", f32 / weights);
            row.put("bf16_ns_per_weight", bf16 / weights);
            row.put("nf4_gb_per_s", s.nf4Bytes() / nf4);
            row.put("f32_gb_per_s", 4 * weights / f32);
            row.put("bf16_gb_per_s", 2 * weights / bf16);
            row.put("nf4_gflops", flops / nf4);
            row.put("f32_gflops", flops / f32);
            row.put("bf16_gflops", flops / bf16);
            row.put("speedup_vs_f32", f32 / nf4);
            row.put("speedup_vs_bf16", bf16 / nf4);
            results.add(row);
            if (!json) {
                out.printf(Locale.ROOT, "%-24s %5d %10.4f %10.4f %10.4f %8.1f %8.1f %8.1f %8.1f %6.2fx%n",
                        s.rows() + " x " + s.cols(), batch, nf4 / weights, f32 / weights, bf16 / weights,
                        s.nf4Bytes() / nf4, 4 * weights / f32, flops / nf4, flops / f32, f32 / nf4);
                out.flush();
            }
        }
    }

    /** The median time of one call in ns, after a warm-up of a third of the time. */
    private double time(WeightMatrix matrix, float[] x, int batch, float[] y, ForkJoinPool pool) {
        long budget = (long) (seconds * 1e9);
        long warmEnd = System.nanoTime() + budget / 3;
        int warm = 0;
        while (warm < 2 || System.nanoTime() < warmEnd) {
            matrix.matMul(x, batch, y, pool);
            warm++;
        }
        List<Long> times = new ArrayList<>();
        long end = System.nanoTime() + budget;
        while (times.size() < 3 || System.nanoTime() < end) {
            long t = System.nanoTime();
            matrix.matMul(x, batch, y, pool);
            times.add(System.nanoTime() - t);
        }
        times.sort(null);
        return times.get(times.size() / 2);
    }

    private static String toJson(List<Map<String, Object>> results) {
        StringBuilder json = new StringBuilder("[");
        for (int i = 0; i < results.size(); i++) {
            json.append(i == 0 ? "\n  {" : ",\n  {");
            int k = 0;
            for (Map.Entry<String, Object> e : results.get(i).entrySet()) {
                json.append(k++ == 0 ? "" : ", ").append(Json.string(e.getKey())).append(": ");
                Object v = e.getValue();
                json.append(v instanceof String text ? Json.string(text)
                        : v instanceof Double d ? Json.number(d) : String.valueOf(v));
            }
            json.append('}');
        }
        return json.append("\n]").toString();
    }
}
