package dev.qnat.cli;

import dev.qnat.convert.Dequantizer;
import dev.qnat.format.QnatFile;
import dev.qnat.nf4.FloatType;
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

    @Parameters(index = "0", paramLabel = "FILE", description = "A QNAT file (v2 or v1).")
    Path file;

    @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUT.safetensors")
    Path output;

    @Option(names = "--dtype", paramLabel = "f32|f16|bf16",
            description = "The dtype of dequantized tensors (default: each tensor's source dtype).")
    Dtype dtype;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        long started = System.nanoTime();
        try (QnatFile qnat = QnatFile.open(file)) {
            Dequantizer.toSafetensors(qnat, output, dtype == null ? null : dtype.type);
            spec.commandLine().getOut().printf("wrote %s: %d tensors, %s in %s%n", output, qnat.tensors().size(),
                    Units.bytes(Files.size(output)), Units.seconds(System.nanoTime() - started));
        }
        return Main.OK;
    }
}
