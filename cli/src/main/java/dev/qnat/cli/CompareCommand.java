package dev.qnat.cli;

import dev.qnat.bnb.BitsandbytesImport;
import dev.qnat.bnb.BitsandbytesTensor;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.format.TensorToWrite;
import dev.qnat.io.FileSnapshot;
import dev.qnat.nf4.Nf4;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsTensor;
import java.io.PrintWriter;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "compare", mixinStandardHelpOptions = true,
        description = "Error statistics of a quantized file against its original, tensor by tensor; exit 1 if their "
                + "tensors or shapes differ.")
final class CompareCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "ORIGINAL", description = "The original safetensors checkpoint.")
    Path original;

    @Parameters(index = "1", paramLabel = "QUANTIZED",
            description = "A QNAT file, a bitsandbytes NF4 checkpoint, or safetensors dequantized from either.")
    Path quantized;

    @Option(names = "--json", description = "Print JSON instead of text.")
    boolean json;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        List<Comparison.Stats> all = new ArrayList<>();
        List<String> problems = new ArrayList<>();
        List<FileSnapshot> opened = new ArrayList<>();
        try (Checkpoint source = Checkpoint.open(original); Arena arena = Arena.ofShared()) {
            opened.addAll(source.files());
            // A command is short-lived: on a small model the scalar kernels finish before the vector ones
            // compile. The tensors are compared one after another on this thread.
            Nf4.expectWork(source.tensors().stream().filter(t -> t.dtype().floatType().isPresent())
                    .mapToLong(SafetensorsTensor::elementCount).sum(), 1);
            if (QnatFile.isQnat(quantized)) {
                try (QnatFile qnat = QnatFile.open(quantized)) {
                    qnat.snapshot().ifPresent(opened::add);
                    for (SafetensorsTensor t : source.tensors()) {
                        QnatTensor q = qnat.tensor(t.name()).orElse(null);
                        if (check(t, q == null ? null : q.shape(), problems) && t.dtype().floatType().isPresent()) {
                            all.add(Comparison.compare(t.name(), Comparison.of(t), Comparison.of(q, arena)));
                        }
                    }
                    missing(qnat.tensors().stream().map(QnatTensor::name).toList(), source, problems);
                }
            } else {
                try (Checkpoint other = Checkpoint.open(quantized)) {
                    opened.addAll(other.files());
                    if (BitsandbytesImport.holdsNf4(other)) {
                        compareBitsandbytes(source, other, all, problems);
                        return report(all, problems);
                    }
                    for (SafetensorsTensor t : source.tensors()) {
                        SafetensorsTensor q = other.tensor(t.name()).orElse(null);
                        if (check(t, q == null ? null : q.shape(), problems) && t.dtype().floatType().isPresent()) {
                            all.add(Comparison.compare(t.name(), Comparison.of(t), Comparison.of(q)));
                        }
                    }
                    missing(other.tensors().stream().map(SafetensorsTensor::name).toList(), source, problems);
                }
            }
        } catch (InternalError e) {
            throw FileSnapshot.mappedReadFailed(e, opened);
        }
        return report(all, problems);
    }

    /** Against a bitsandbytes checkpoint: its 4-bit weights dequantized, its other tensors as stored. */
    private static void compareBitsandbytes(Checkpoint source, Checkpoint bitsandbytes, List<Comparison.Stats> all,
                                            List<String> problems) throws Exception {
        Map<String, TensorToWrite> plan = new LinkedHashMap<>();
        BitsandbytesImport.plan(bitsandbytes).forEach(t -> plan.put(t.name(), t));
        for (SafetensorsTensor t : source.tensors()) {
            TensorToWrite q = plan.get(t.name());
            if (check(t, q == null ? null : q.shape(), problems) && t.dtype().floatType().isPresent()) {
                if (q.encoded() == null) {
                    all.add(Comparison.compare(t.name(), Comparison.of(t), Comparison.of(bitsandbytes.tensor(t.name())
                            .orElseThrow())));
                } else {
                    try (BitsandbytesTensor nf4 = new BitsandbytesTensor(q)) {
                        all.add(Comparison.compare(t.name(), Comparison.of(t), Comparison.of(nf4)));
                    }
                }
            }
        }
        missing(List.copyOf(plan.keySet()), source, problems);
    }

    private int report(List<Comparison.Stats> all, List<String> problems) {
        PrintWriter out = spec.commandLine().getOut();
        Comparison.Stats total = Comparison.total(all);
        if (json) {
            StringBuilder s = new StringBuilder("{\"total\": ").append(total.json()).append(", \"problems\": [");
            for (int i = 0; i < problems.size(); i++) {
                s.append(i == 0 ? "" : ", ").append(Json.string(problems.get(i)));
            }
            s.append("], \"tensors\": [");
            for (int i = 0; i < all.size(); i++) {
                s.append(i == 0 ? "" : ", ").append(all.get(i).json());
            }
            out.println(s.append("]}"));
        } else {
            // %-0s is not a format: at least 1, whatever the names
            int width = Math.max(1, all.stream().mapToInt(x -> x.name().length()).max().orElse(4));
            for (Comparison.Stats x : all) {
                out.printf("  %-" + width + "s  %s%n", x.name(), x.line());
            }
            out.println("all " + all.size() + " float tensors: " + total.line());
            problems.forEach(p -> out.println("MISMATCH: " + p));
        }
        return problems.isEmpty() ? Main.OK : Main.FAILED;
    }

    private static boolean check(SafetensorsTensor t, long[] otherShape, List<String> problems) {
        if (otherShape == null) {
            problems.add("tensor '" + t.name() + "' is missing from the quantized file");
            return false;
        }
        if (!Arrays.equals(t.shape(), otherShape)) {
            problems.add("tensor '" + t.name() + "' has shape " + Arrays.toString(t.shape()) + " and "
                    + Arrays.toString(otherShape));
            return false;
        }
        return true;
    }

    private static void missing(List<String> names, Checkpoint source, List<String> problems) {
        names.stream().filter(n -> source.tensor(n).isEmpty())
                .forEach(n -> problems.add("tensor '" + n + "' is not in the original"));
    }
}
