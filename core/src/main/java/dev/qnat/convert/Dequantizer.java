package dev.qnat.convert;

import dev.qnat.format.DType;
import dev.qnat.format.Encoding;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.nf4.FloatType;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Turns a QNAT file back into a safetensors file: NF4 tensors dequantized, RAW tensors copied as stored. */
public final class Dequantizer {
    private Dequantizer() {}

    /**
     * Writes {@code qnat} as safetensors to {@code target}; NF4 tensors become {@code dtype}, or their
     * source dtype when {@code dtype} is null. The file's metadata goes to {@code __metadata__}.
     */
    public static void toSafetensors(QnatFile qnat, Path target, FloatType dtype) throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (QnatTensor tensor : qnat.tensors()) {
            if (tensor.encoding() == Encoding.RAW) {
                entries.add(new SafetensorsWriter.Entry(tensor.name(), tensor.dtype(), tensor.shape(),
                        destination -> destination.copyFrom(tensor.data())));
            } else {
                FloatType out = dtype != null ? dtype : tensor.dtype().floatType().orElseThrow();
                entries.add(new SafetensorsWriter.Entry(tensor.name(), DType.of(out), tensor.shape(),
                        destination -> tensor.dequantize(destination, out)));
            }
        }
        SafetensorsWriter.write(target, Map.copyOf(qnat.metadata()), entries);
    }
}
