package dev.qnat.bench.accuracy;

import dev.qnat.format.DType;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Writes all-MiniLM-L6-v2's F32 initializers (its ONNX model from langchain4j's jar, 101 tensors, 22.7 M
 * weights) as a safetensors file: the small real model of issue 12's start-up target, for
 * {@code bench/small.sh}. Usage: {@code MiniLmCheckpoint OUT.safetensors}.
 */
public final class MiniLmCheckpoint {
    private MiniLmCheckpoint() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            System.err.println("usage: MiniLmCheckpoint OUT.safetensors");
            System.exit(2);
        }
        OnnxModel model = OnnxModel.parse(EmbeddingAccuracy.resource(EmbeddingAccuracy.MODEL));
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        for (OnnxModel.Initializer initializer : model.floatInitializers()) {
            byte[] values = initializer.values();
            entries.add(new SafetensorsWriter.Entry(initializer.name(), DType.F32, initializer.shape(),
                    data -> MemorySegment.copy(MemorySegment.ofArray(values), 0, data, 0, values.length)));
        }
        SafetensorsWriter.write(Path.of(args[0]), Map.of(), entries);
        System.out.println(args[0] + ": " + entries.size() + " F32 tensors");
    }
}
