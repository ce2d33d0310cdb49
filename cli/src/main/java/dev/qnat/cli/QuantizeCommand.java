package dev.qnat.cli;

import dev.qnat.bnb.BitsandbytesExport;
import dev.qnat.convert.Quantizer;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.ScaleRule;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsTensor;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.function.Predicate;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Quantize a safetensors checkpoint to NF4, as a QNAT file or a bitsandbytes safetensors file.")
final class QuantizeCommand implements Callable<Integer> {
    enum Format { qnat, bnb }

    @Parameters(index = "0", paramLabel = "INPUT",
            description = "A .safetensors file, a sharded checkpoint folder, or its model.safetensors.index.json.")
    Path input;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUTPUT", description = "The file to write.")
    Path output;

    @Option(names = "--format", defaultValue = "qnat", description = "qnat (default) or bnb (bitsandbytes safetensors).")
    Format format;

    @Option(names = "--block-size", defaultValue = "64", paramLabel = "N", description = "NF4 block size (default 64).")
    int blockSize;

    @Option(names = "--double-quant", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Double-quantize the block scales, as QLoRA does (default on).")
    boolean doubleQuant;

    @Option(names = "--scales", defaultValue = "absmax", paramLabel = "RULE",
            description = "How each block's scale is chosen: absmax (default, bitsandbytes' own, bit for bit) or mse "
                    + "(least squared error, about 7 %% lower RMSE; every NF4 reader loads it).")
    String scales;

    @Option(names = "--include", paramLabel = "GLOB",
            description = "Quantize only float tensors whose names match (any number of dimensions); repeatable.")
    List<String> include = new ArrayList<>();

    @Option(names = "--exclude", paramLabel = "GLOB", description = "Never quantize tensors whose names match; repeatable.")
    List<String> exclude = new ArrayList<>();

    @Option(names = "--threads", paramLabel = "N", description = "Worker threads (default: all cores).")
    int threads = Runtime.getRuntime().availableProcessors();

    @Option(names = "--no-stats", description = "Skip the accuracy figures.")
    boolean noStats;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        try {
            Nf4.checkBlockSize(blockSize);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--block-size: " + e.getMessage());
        }
        if (threads < 1) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--threads must be at least 1");
        }
        ScaleRule scaleRule;
        try {
            scaleRule = ScaleRule.named(scales);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--scales: " + e.getMessage());
        }
        List<NameGlob> includes = globs("--include", include);
        List<NameGlob> excludes = globs("--exclude", exclude);
        PrintWriter out = spec.commandLine().getOut();
        Quantizer.Options options = Quantizer.Options.defaults().withBlockSize(blockSize).withDoubleQuant(doubleQuant)
                .withThreads(threads).withSelection(selection(includes, excludes)).withScaleRule(scaleRule);
        run(input, output, format, options, includes, noStats, out, spec.commandLine().getErr());
        return Main.OK;
    }

    private List<NameGlob> globs(String option, List<String> patterns) {
        List<NameGlob> globs = new ArrayList<>();
        for (String pattern : patterns) {
            try {
                globs.add(NameGlob.compile(pattern));
            } catch (IllegalArgumentException e) {
                throw new CommandLine.ParameterException(spec.commandLine(), option + ": " + e.getMessage());
            }
        }
        return globs;
    }

    /** Which tensors become NF4: float matrices by default, or float tensors matching --include; never --exclude. */
    static Predicate<SafetensorsTensor> selection(List<NameGlob> include, List<NameGlob> exclude) {
        return t -> {
            boolean chosen = include.isEmpty() ? Quantizer.FLOAT_MATRICES.test(t)
                    : t.dtype().floatType().isPresent() && include.stream().anyMatch(g -> g.matches(t.name()));
            return chosen && exclude.stream().noneMatch(g -> g.matches(t.name()));
        };
    }

    /**
     * Quantizes and prints the summary; shared with the demo. Each of {@code includes} must match a tensor
     * name, or nothing is written (a usage error). Returns the accuracy over all quantized tensors.
     */
    static Comparison.Stats run(Path input, Path output, Format format, Quantizer.Options options, List<NameGlob> includes,
                                boolean noStats, PrintWriter out, PrintWriter err) throws Exception {
        long started = System.nanoTime();
        try (Checkpoint checkpoint = Checkpoint.open(input)) {
            checkIncludes(checkpoint, includes, input);
            // A command is short-lived: on a small model the scalar kernels finish before the vector ones compile.
            Nf4.expectWork(checkpoint.tensors().stream().filter(options.quantize())
                    .mapToLong(SafetensorsTensor::elementCount).sum(), options.threads());
            Quantizer.Summary summary;
            try (Progress progress = new Progress("quantize", checkpoint.dataBytes(), err, Progress.onTerminal())) {
                Quantizer.Options withProgress = options.withProgress(progress);
                summary = format == Format.bnb ? BitsandbytesExport.export(checkpoint, output, withProgress)
                        // The figures are measured in the quantization pass, so they cost no second read.
                        : Quantizer.quantize(checkpoint, output, withProgress.withMeasure(!noStats));
            }
            printSummary(summary, input, output, format, options, System.nanoTime() - started, out);
            if (noStats || summary.quantized() == 0) {
                return null;
            }
            if (format == Format.bnb) {
                out.println("accuracy: quantize to QNAT with the same options, or run 'qnat compare', for the figures");
                return null;
            }
            return printAccuracy(checkpoint, summary.errors(), out);
        }
    }

    /** Each of {@code includes} must match a tensor: one that matches none is most likely a typo. */
    private static void checkIncludes(Checkpoint checkpoint, List<NameGlob> includes, Path input) {
        for (NameGlob glob : includes) {
            if (checkpoint.tensors().stream().noneMatch(t -> glob.matches(t.name()))) {
                throw new IllegalArgumentException("--include '" + glob + "' matches no tensor of " + input);
            }
        }
    }

    private static void printSummary(Quantizer.Summary s, Path input, Path output, Format format,
                                     Quantizer.Options options, long elapsed, PrintWriter out) {
        out.printf("quantized %d tensors to NF4 (block %d%s, %s scales), kept %d as they were%n", s.quantized(),
                options.blockSize(), options.doubleQuant() ? ", double quantization" : "", options.scaleRule().cliName(),
                s.kept());
        out.printf("input %s (%s), output %s (%s, %s)%n", Units.bytes(s.bytesIn()), input.getFileName(),
                Units.bytes(s.bytesOut()), output.getFileName(), format == Format.bnb ? "bitsandbytes safetensors" : "QNAT");
        if (s.quantizedElements() > 0) {
            out.printf("bits per quantized weight: %.3f in codes and scales, %.3f with headers, tables and padding%n",
                    8.0 * s.payloadBytes() / s.quantizedElements(),
                    8.0 * (s.bytesOut() - s.keptBytes()) / s.quantizedElements());
        }
        out.printf("wall time %s, %.2f GB/s of input on %d %s, %s kernels (JIT warm-up included)%n",
                Units.seconds(elapsed), s.bytesIn() / (elapsed / 1e9) / 1e9, options.threads(),
                options.threads() == 1 ? "thread" : "threads", Nf4.kernelName());
        if (format == Format.bnb) {
            out.println("transformers loads it with the quantization_config written beside it");
        }
    }

    private static Comparison.Stats printAccuracy(Checkpoint checkpoint, Map<String, QuantizationError> errors,
                                                  PrintWriter out) {
        List<Comparison.Stats> all = new ArrayList<>();
        for (SafetensorsTensor t : checkpoint.tensors()) {
            QuantizationError error = errors.get(t.name());
            if (error != null) {
                all.add(new Comparison.Stats(t.name(), error));
            }
        }
        Comparison.Stats total = Comparison.total(all);
        Comparison.Stats worst = Comparison.worst(all);
        out.println("accuracy over all quantized weights: " + total.line());
        out.println("worst tensor '" + worst.name() + "': " + worst.line());
        return total;
    }
}
