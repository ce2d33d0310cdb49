package dev.qnat.cli;

import dev.qnat.convert.Dequantizer;
import dev.qnat.convert.Quantizer;
import dev.qnat.format.Encoding;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.nf4.FloatMatrix;
import dev.qnat.nf4.WeightMatrix;
import dev.qnat.io.OutputTarget;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsTensor;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Generate a small language-model checkpoint and run quantize, verify, dequantize and compare on it.")
final class DemoCommand implements Callable<Integer> {
    @Option(names = "--keep", description = "Keep the files (and say where they are).")
    boolean keep;

    @Option(names = "--layers", defaultValue = "4", paramLabel = "N", description = "Transformer blocks (default 4).")
    int layers;

    @Option(names = "--hidden", defaultValue = "1024", paramLabel = "N", description = "Hidden size (default 1024).")
    int hidden;

    @Option(names = "--vocab", defaultValue = "8192", paramLabel = "N", description = "Vocabulary size (default 8192).")
    int vocab;

    @Option(names = "--dir", paramLabel = "DIR", description = "Where to work (default: a new temp folder).")
    Path dir;

    /**
     * matVec with the largest 2-D NF4 tensor, on its 4-bit codes and on its dequantized weights as F32: the
     * speed-up and the largest error of the NF4 result against a float64 product of the dequantized weights.
     */
    static String multiply(QnatFile file) throws Exception {
        QnatTensor layer = file.tensors().stream()
                .filter(t -> t.encoding() == Encoding.NF4 && t.shape().length == 2 && !t.hasZeroPoints())
                .max(Comparator.comparingLong(QnatTensor::elementCount)).orElse(null);
        if (layer == null) {
            return "no 2-D NF4 tensor to multiply";
        }
        int rows = (int) layer.shape()[0];
        int cols = (int) layer.shape()[1];
        float[] w = layer.toFloats();
        FloatMatrix f32 = FloatMatrix.of(w, rows, cols);
        float[] x = new float[cols];
        SplittableRandom random = new SplittableRandom(6);
        for (int c = 0; c < cols; c++) {
            x[c] = (float) random.nextGaussian();
        }
        float[] y = new float[rows];
        long nf4Time = medianTime(layer.matrix(), x, y);
        long f32Time = medianTime(f32, x, new float[rows]);
        double worst = 0;
        for (int r = 0; r < rows; r++) {
            double exact = 0;
            for (int c = 0; c < cols; c++) {
                exact += (double) w[r * cols + c] * x[c];
            }
            worst = Math.max(worst, Math.abs(y[r] - exact));
        }
        return String.format(Locale.ROOT, "matVec with '%s' [%d, %d] on its NF4 codes: %.3f ns/weight, %.2fx the F32"
                + " matVec of its dequantized weights (%.3f); largest error against them %.3g", layer.name(), rows, cols,
                (double) nf4Time / w.length, (double) f32Time / nf4Time, (double) f32Time / w.length, worst);
    }

    private static long medianTime(WeightMatrix matrix, float[] x, float[] y) {
        long[] times = new long[31];
        for (int i = -10; i < times.length; i++) {
            long t = System.nanoTime();
            matrix.matVec(x, y);
            if (i >= 0) {
                times[i] = System.nanoTime() - t;
            }
        }
        Arrays.sort(times);
        return Math.max(1, times[times.length / 2]);
    }

    /** The files the demo writes into its folder, which must not be there before. */
    private static final List<String> FILES = List.of("model.safetensors", "model.qnat", "model.dequantized.safetensors");

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (layers < 1 || hidden < 4 || hidden % 4 != 0 || vocab < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(),
                    "--layers and --vocab must be at least 1, --hidden a multiple of 4");
        }
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (dir != null) {
            List<String> present = FILES.stream().filter(name -> Files.exists(dir.resolve(name), LinkOption.NOFOLLOW_LINKS))
                    .toList();
            if (!present.isEmpty()) {
                throw new OutputTarget.OutputRefusedException(dir, "already holds " + String.join(", ", present)
                        + "; the demo writes only new files: give --dir an empty or new folder");
            }
        }
        Path work = dir != null ? Files.createDirectories(dir) : Files.createTempDirectory("qnat-demo-");
        List<Path> created = new ArrayList<>();
        try {
            Path model = work.resolve(FILES.get(0));
            Path qnat = work.resolve(FILES.get(1));
            Path restored = work.resolve(FILES.get(2));

            long t0 = System.nanoTime();
            long parameters = DemoCheckpoint.write(model, layers, hidden, vocab);
            created.add(model);
            out.printf("1/6 generate   %d blocks at hidden size %d: %,d parameters, %s of BF16 safetensors in %s%n",
                    layers, hidden, parameters, Units.bytes(Files.size(model)), Units.seconds(System.nanoTime() - t0));

            out.println("2/6 quantize   NF4, block 64, double quantization, norms kept:");
            QuantizeCommand.run(model, qnat, QuantizeCommand.Format.qnat, Quantizer.Options.defaults(), List.of(), false,
                    new IndentingWriter(out), err);
            created.add(qnat);

            long t2 = System.nanoTime();
            out.println("3/6 verify     " + VerifyCommand.verify(qnat) + " (" + Units.seconds(System.nanoTime() - t2) + ")");

            long t3 = System.nanoTime();
            try (QnatFile file = QnatFile.open(qnat)) {
                Dequantizer.toSafetensors(file, restored, null, false);
            }
            created.add(restored);
            out.printf("4/6 dequantize %s back to BF16 safetensors, %s, in %s%n", qnat.getFileName(),
                    Units.bytes(Files.size(restored)), Units.seconds(System.nanoTime() - t3));

            long t4 = System.nanoTime();
            List<Comparison.Stats> stats = new ArrayList<>();
            try (Checkpoint a = Checkpoint.open(model); Checkpoint b = Checkpoint.open(restored)) {
                for (SafetensorsTensor t : a.tensors()) {
                    stats.add(Comparison.compare(t.name(), Comparison.of(t), Comparison.of(b.tensor(t.name()).orElseThrow())));
                }
            }
            Comparison.Stats total = Comparison.total(stats);
            Comparison.Stats worst = Comparison.worst(stats);
            out.printf("5/6 compare    original against dequantized, all %d tensors: %s (%s)%n", stats.size(), total.line(),
                    Units.seconds(System.nanoTime() - t4));
            out.printf("               worst '%s': %s%n", worst.name(), worst.line());
            long t5 = System.nanoTime();
            try (QnatFile file = QnatFile.open(qnat)) {
                out.println("6/6 multiply   " + multiply(file) + " (" + Units.seconds(System.nanoTime() - t5) + ")");
            }
            out.printf("done in %s%s%n", Units.seconds(System.nanoTime() - t0), keep ? "; files kept in " + work : "");
            return Main.OK;
        } finally {
            if (!keep) {
                // Only what the demo made: a --dir the user gave may hold other files.
                for (Path file : created) {
                    Files.deleteIfExists(file);
                }
                if (dir == null) {
                    Files.deleteIfExists(work);
                }
            }
        }
    }

    /** Indents another command's summary under a demo step. */
    private static final class IndentingWriter extends PrintWriter {
        IndentingWriter(PrintWriter out) {
            super(new java.io.Writer() {
                private boolean lineStart = true;

                @Override
                public void write(char[] buffer, int offset, int length) {
                    for (int i = offset; i < offset + length; i++) {
                        if (lineStart) {
                            out.write("               ");
                        }
                        out.write(buffer[i]);
                        lineStart = buffer[i] == '\n';
                    }
                }

                @Override
                public void flush() {
                    out.flush();
                }

                @Override
                public void close() {
                    flush();
                }
            }, true);
        }
    }
}
