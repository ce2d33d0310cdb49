package dev.qnat.cli;

import dev.qnat.bnb.BitsandbytesImport;
import dev.qnat.convert.Dequantizer;
import dev.qnat.format.Encoding;
import dev.qnat.format.FormatException;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.format.TensorToWrite;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.safetensors.Checkpoint;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "dequantize", mixinStandardHelpOptions = true,
        description = "Write a QNAT file back as safetensors: NF4 tensors dequantized, the others copied.")
final class DequantizeCommand implements Callable<Integer> {
    enum Dtype {
        f32(FloatType.F32), f16(FloatType.F16), bf16(FloatType.BF16);

        final FloatType type;

        Dtype(FloatType type) {
            this.type = type;
        }
    }

    @Parameters(index = "0", paramLabel = "FILE",
            description = "A QNAT file (v2 or v1), or a bitsandbytes NF4 safetensors file, folder or index.")
    Path file;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUT.safetensors")
    Path output;

    @Option(names = "--dtype", paramLabel = "f32|f16|bf16",
            description = "The dtype of dequantized tensors (default: each tensor's source dtype).")
    Dtype dtype;

    @Option(names = "--allow-overflow",
            description = "Write values beyond the dtype's range (above 65504 for f16) as infinities, and count them, "
                    + "instead of failing.")
    boolean allowOverflow;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        long started = System.nanoTime();
        FloatType type = dtype == null ? null : dtype.type;
        Dequantizer.Summary summary;
        // A command is short-lived: on a small file the scalar kernels finish before the vector ones compile.
        // The dequantizer writes the tensors one after another on this thread.
        if (QnatFile.isQnat(file)) {
            try (QnatFile qnat = QnatFile.open(file)) {
                Nf4.expectWork(qnat.tensors().stream().filter(t -> t.encoding() != Encoding.RAW)
                        .mapToLong(QnatTensor::elementCount).sum(), 1);
                summary = Dequantizer.toSafetensors(qnat, output, type, allowOverflow);
            }
        } else {
            try (Checkpoint checkpoint = Checkpoint.open(file)) {
                if (!BitsandbytesImport.holdsNf4(checkpoint)) {
                    throw new FormatException(file + ": neither a QNAT file nor a bitsandbytes NF4 checkpoint");
                }
                Nf4.expectWork(BitsandbytesImport.plan(checkpoint).stream().filter(t -> t.encoded() != null)
                        .mapToLong(TensorToWrite::elementCount).sum(), 1);
                summary = BitsandbytesImport.toSafetensors(checkpoint, output, type, allowOverflow);
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        out.printf("wrote %s: %d tensors, %s in %s%n", output, summary.tensors(), Units.bytes(Files.size(output)),
                Units.seconds(System.nanoTime() - started));
        if (summary.overflowed() > 0) {
            spec.commandLine().getErr().printf("qnat: warning: %d values were beyond %s's range and were written as "
                    + "infinities%n", summary.overflowed(), type == null ? "the source dtype" : type.toString());
        }
        return Main.OK;
    }
}
