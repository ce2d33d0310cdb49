package dev.qnat.cli;

import dev.qnat.bnb.BitsandbytesNf4;
import dev.qnat.format.Encoding;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsTensor;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Describe a QNAT (v1 or v2), safetensors or bitsandbytes file: metadata and tensors.")
final class InspectCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "FILE", description = "A QNAT file, or a safetensors file, folder or index.")
    Path file;

    @Option(names = "--json", description = "Print JSON instead of text.")
    boolean json;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        if (QnatFile.isQnat(file)) {
            try (QnatFile qnat = QnatFile.open(file, false)) {
                List<String[]> rows = new ArrayList<>();
                for (QnatTensor t : qnat.tensors()) {
                    rows.add(new String[] {t.name(), Arrays.toString(t.shape()), t.dtype().name(),
                        t.encoding() == Encoding.NF4 ? "NF4/" + t.blockSize() + "/" + t.scaleStorage()
                            + (t.hasZeroPoints() ? "+zero points" : "") : "RAW", Long.toString(t.storedBytes())});
                }
                String kind = "QNAT v" + qnat.version();
                String extra = qnat.v1OffsetError().isPresent() ? "stored data offsets are off by "
                        + qnat.v1OffsetError().getAsLong() + " bytes (the qlora-rs writer's error), corrected on read" : null;
                print(out, kind, qnat.fileSize(), qnat.metadata(), rows, extra);
            }
            return Main.OK;
        }
        try (Checkpoint checkpoint = Checkpoint.open(file)) {
            List<String[]> rows = new ArrayList<>();
            int states = 0;
            for (SafetensorsTensor t : checkpoint.tensors()) {
                states += t.name().endsWith(BitsandbytesNf4.STATE_SUFFIX) ? 1 : 0;
                rows.add(new String[] {t.name(), Arrays.toString(t.shape()), t.dtype().name(), "RAW",
                    Long.toString(t.data().byteSize())});
            }
            String kind = states > 0 ? "bitsandbytes NF4 safetensors" : "safetensors";
            print(out, kind, checkpoint.dataBytes(), checkpoint.metadata(), rows,
                    states > 0 ? states + " tensors carry bitsandbytes 4-bit state" : null);
        }
        return Main.OK;
    }

    private void print(PrintWriter out, String kind, long size, Map<String, String> metadata, List<String[]> rows,
                       String note) {
        if (json) {
            StringBuilder s = new StringBuilder("{\"file\": ").append(Json.string(file.toString()))
                    .append(", \"format\": ").append(Json.string(kind)).append(", \"bytes\": ").append(size)
                    .append(", \"metadata\": {");
            String separator = "";
            for (Map.Entry<String, String> m : metadata.entrySet()) {
                s.append(separator).append(Json.string(m.getKey())).append(": ").append(Json.string(m.getValue()));
                separator = ", ";
            }
            s.append("}, \"note\": ").append(note == null ? "null" : Json.string(note)).append(", \"tensors\": [");
            separator = "";
            for (String[] r : rows) {
                s.append(separator).append("{\"name\": ").append(Json.string(r[0])).append(", \"shape\": ").append(r[1])
                        .append(", \"dtype\": ").append(Json.string(r[2])).append(", \"encoding\": ").append(Json.string(r[3]))
                        .append(", \"bytes\": ").append(r[4]).append('}');
                separator = ", ";
            }
            out.println(s.append("]}"));
            return;
        }
        out.printf("%s: %s, %s, %d tensors%n", file, kind, Units.bytes(size), rows.size());
        if (note != null) {
            out.println(note);
        }
        metadata.forEach((k, v) -> out.printf("  %s = %s%n", k, v));
        // %-0s is not a format: at least 1, whatever the names
        int width = Math.max(1, rows.stream().mapToInt(r -> r[0].length()).max().orElse(4));
        for (String[] r : rows) {
            out.printf("  %-" + width + "s  %-16s %-5s %-26s %12s%n", r[0], r[1], r[2], r[3], Units.bytes(Long.parseLong(r[4])));
        }
    }
}
