package dev.qnat.bench.accuracy;

import dev.qnat.format.DType;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.format.QnatWriter;
import dev.qnat.format.TensorToWrite;
import dev.qnat.nf4.QuantizationError;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The model's weight matrices through qnat and back: written as NF4 into a temp QNAT file with
 * {@link QnatWriter}, read back with {@link QnatFile} and dequantized to F32, as a user of qnat would get
 * them. Which initializers are quantized follows {@code qnat quantize}'s rule (floating tensors with at
 * least two dimensions; here float32 ones, the only floats the model holds).
 *
 * <p>ONNX stores each Linear weight as MatMul's B input, transposed to [in, out]; qnat quantizes the Hugging
 * Face checkpoint, where it is [out, in] and each block of 64 runs along the input features. Those
 * initializers are therefore transposed to [out, in] before quantizing and back after, so the blocks are the
 * ones qnat would make from the checkpoint.
 */
public final class Nf4RoundTrip {
    /**
     * The dequantized weights, by initializer name, in the model's own layout.
     *
     * @param error the reconstruction error over every quantized weight
     * @param bitsPerWeight stored bits of codes and scales per quantized weight
     */
    public record Result(Map<String, FloatBuffer> weights, QuantizationError error, double bitsPerWeight) {}

    private Nf4RoundTrip() {}

    /** Whether qnat's rule quantizes this initializer. */
    public static boolean quantizes(OnnxModel.Initializer initializer) {
        return initializer.shape().length >= 2;
    }

    /** Quantizes the model's matrices as {@code variant} says, in a temp file in {@code tempDir} that is deleted after. */
    public static Result run(OnnxModel model, Variant variant, Path tempDir) throws IOException {
        List<TensorToWrite> tensors = new ArrayList<>();
        Map<String, OnnxModel.Initializer> quantized = new LinkedHashMap<>();
        long weights = 0;
        long payloadBytes = 0;
        for (OnnxModel.Initializer initializer : model.floatInitializers()) {
            if (!quantizes(initializer)) {
                continue;
            }
            boolean transposed = model.isMatMulWeight(initializer.name());
            long[] shape = transposed ? transposedShape(initializer.shape()) : initializer.shape();
            byte[] values = transposed ? transpose(initializer.values(), initializer.shape()) : initializer.values();
            tensors.add(toWrite(initializer.name(), shape, MemorySegment.ofArray(values), variant));
            quantized.put(initializer.name(), initializer);
            weights += initializer.elementCount();
            payloadBytes += TensorToWrite.payloadBytes(initializer.elementCount(), variant.blockSize(), variant.doubleQuant());
        }
        Path file = Files.createTempFile(tempDir, "qnat-accuracy-", ".qnat");
        try {
            // One thread: the machine this runs on is shared, and the quantization takes well under a second.
            QnatWriter.write(file, Map.of("variant", variant.label()), tensors, 1, QnatWriter.Progress.NONE);
            Map<String, FloatBuffer> restored = new LinkedHashMap<>();
            QuantizationError error = new QuantizationError();
            try (QnatFile qnat = QnatFile.open(file)) {
                for (OnnxModel.Initializer initializer : quantized.values()) {
                    QnatTensor tensor = qnat.tensor(initializer.name()).orElseThrow(() -> new IOException(
                            "tensor '" + initializer.name() + "' is missing from " + file));
                    float[] values = tensor.toFloats();
                    if (model.isMatMulWeight(initializer.name())) {
                        values = transpose(values, tensor.shape());
                    }
                    measure(initializer.values(), values, error);
                    restored.put(initializer.name(), directBuffer(values));
                }
            }
            return new Result(restored, error, 8.0 * payloadBytes / weights);
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static TensorToWrite toWrite(String name, long[] shape, MemorySegment data, Variant variant) {
        return TensorToWrite.nf4(name, shape, DType.F32, data, variant.blockSize(), variant.doubleQuant(),
                variant.scales());
    }

    private static void measure(byte[] original, float[] restored, QuantizationError error) {
        FloatBuffer source = ByteBuffer.wrap(original).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        double squaredError = 0;
        double squaredSignal = 0;
        double maxError = 0;
        for (int i = 0; i < restored.length; i++) {
            double x = source.get(i);
            double d = x - restored[i];
            squaredError += d * d;
            squaredSignal += x * x;
            maxError = Math.max(maxError, Math.abs(d));
        }
        error.add(restored.length, squaredError, squaredSignal, maxError);
    }

    // ONNX Runtime reads a direct buffer in place; a heap one it would copy again.
    private static FloatBuffer directBuffer(float[] values) {
        FloatBuffer buffer = ByteBuffer.allocateDirect(values.length * Float.BYTES).order(ByteOrder.nativeOrder())
                .asFloatBuffer();
        buffer.put(values).flip();
        return buffer;
    }

    private static long[] transposedShape(long[] shape) {
        return new long[] {shape[1], shape[0]};
    }

    private static byte[] transpose(byte[] values, long[] shape) {
        FloatBuffer source = ByteBuffer.wrap(values).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        float[] floats = new float[source.remaining()];
        source.get(floats);
        float[] transposed = transpose(floats, shape);
        ByteBuffer out = ByteBuffer.allocate(values.length).order(ByteOrder.LITTLE_ENDIAN);
        out.asFloatBuffer().put(transposed);
        return out.array();
    }

    private static float[] transpose(float[] values, long[] shape) {
        if (shape.length != 2) {
            throw new IllegalArgumentException("a MatMul weight must be 2-D, got rank " + shape.length);
        }
        int rows = Math.toIntExact(shape[0]);
        int cols = Math.toIntExact(shape[1]);
        float[] transposed = new float[values.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                transposed[c * rows + r] = values[r * cols + c];
            }
        }
        return transposed;
    }
}
