package dev.qnat.cli;

import dev.qnat.format.FormatException;
import dev.qnat.format.QnatFile;
import dev.qnat.io.FileSnapshot;
import dev.qnat.safetensors.Checkpoint;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

@Command(name = "verify", mixinStandardHelpOptions = true,
        description = "Check a file's whole structure and every checksum; exit 0 if intact, 1 if not.")
final class VerifyCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "FILE", description = "A QNAT file, or a safetensors file, folder or index.")
    Path file;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        try {
            out.println(verify(file));
            return Main.OK;
        } catch (FormatException e) {
            out.println("FAILED: " + e.getMessage());
            return Main.FAILED;
        }
    }

    /** A one-line description of an intact file; a FormatException otherwise. */
    static String verify(Path file) throws Exception {
        if (QnatFile.isQnat(file)) {
            try (QnatFile qnat = QnatFile.open(file, false)) {
                try {
                    qnat.verify();
                } catch (InternalError e) {
                    throw FileSnapshot.mappedReadFailed(e, qnat.snapshot().stream().toList());
                }
                return "OK: " + file + " is an intact QNAT v" + qnat.version() + " file, " + qnat.tensors().size() + " tensors"
                        + (qnat.version() == 2 ? ", header and section CRCs match" : " (v1 has no checksums; structure checked)");
            }
        }
        try (Checkpoint checkpoint = Checkpoint.open(file)) {
            return "OK: " + file + " is a well-formed safetensors checkpoint, " + checkpoint.tensors().size()
                    + " tensors (safetensors has no checksums; structure checked)";
        }
    }
}
