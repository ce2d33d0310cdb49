package dev.qnat.convert;

import dev.qnat.Qnat;
import dev.qnat.format.QnatWriter;
import dev.qnat.format.TensorToWrite;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.nf4.ScaleRule;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsTensor;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Predicate;

/** Quantizes a safetensors checkpoint into a QNAT file: chosen tensors to NF4, the others kept as they are. */
public final class Quantizer {
    /** bitsandbytes' choice: floating tensors with at least two dimensions (weights, not norms or biases). */
    public static final Predicate<SafetensorsTensor> FLOAT_MATRICES =
            t -> t.dtype().floatType().isPresent() && t.shape().length >= 2;

    /**
     * @param blockSize NF4 block size
     * @param doubleQuant whether to double-quantize the scales
     * @param threads worker threads
     * @param quantize which tensors become NF4 (others are kept); must pick only F32, F16 or BF16 tensors
     * @param progress told of input bytes as they are processed
     * @param measure whether to measure each quantized tensor's error while quantizing it
     * @param scaleRule how each block's scale is chosen
     */
    public record Options(int blockSize, boolean doubleQuant, int threads, Predicate<SafetensorsTensor> quantize,
                          QnatWriter.Progress progress, boolean measure, ScaleRule scaleRule) {
        public Options {
            Nf4.checkBlockSize(blockSize);
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be at least 1, got " + threads);
            }
            Objects.requireNonNull(quantize, "quantize");
            Objects.requireNonNull(progress, "progress");
            Objects.requireNonNull(scaleRule, "scaleRule");
        }

        /** Block 64, double quantization, all cores, float matrices, no progress reports, not measured, absmax. */
        public static Options defaults() {
            return new Options(Nf4.DEFAULT_BLOCK_SIZE, true, Runtime.getRuntime().availableProcessors(), FLOAT_MATRICES,
                    QnatWriter.Progress.NONE, false, ScaleRule.ABSMAX);
        }

        public Options withBlockSize(int value) {
            return new Options(value, doubleQuant, threads, quantize, progress, measure, scaleRule);
        }

        public Options withDoubleQuant(boolean value) {
            return new Options(blockSize, value, threads, quantize, progress, measure, scaleRule);
        }

        public Options withThreads(int value) {
            return new Options(blockSize, doubleQuant, value, quantize, progress, measure, scaleRule);
        }

        public Options withSelection(Predicate<SafetensorsTensor> value) {
            return new Options(blockSize, doubleQuant, threads, value, progress, measure, scaleRule);
        }

        public Options withProgress(QnatWriter.Progress value) {
            return new Options(blockSize, doubleQuant, threads, quantize, value, measure, scaleRule);
        }

        public Options withScaleRule(ScaleRule value) {
            return new Options(blockSize, doubleQuant, threads, quantize, progress, measure, value);
        }

        public Options withMeasure(boolean value) {
            return new Options(blockSize, doubleQuant, threads, quantize, progress, value, scaleRule);
        }
    }

    /**
     * What a quantization did.
     *
     * @param errors by tensor name, each quantized tensor's error as read back from the file; empty
     *               unless the options asked to measure
     */
    public record Summary(int quantized, int kept, long bytesIn, long bytesOut, long quantizedElements,
                          long payloadBytes, long keptBytes, Map<String, QuantizationError> errors) {

        /**
         * The summary of writing {@code checkpoint} with {@code options} into {@code bytesOut} bytes, QNAT or
         * bitsandbytes alike: {@code payloadBytes} are the quantized tensors' codes and scales
         * ({@link TensorToWrite#payloadBytes}), {@code keptBytes} the data of the tensors kept as they were.
         */
        public static Summary of(Checkpoint checkpoint, Options options, long bytesOut,
                                 Map<String, QuantizationError> errors) {
            int quantized = 0;
            long elements = 0;
            long payload = 0;
            long kept = 0;
            for (SafetensorsTensor t : checkpoint.tensors()) {
                if (options.quantize().test(t)) {
                    quantized++;
                    elements += t.elementCount();
                    payload += TensorToWrite.payloadBytes(t.elementCount(), options.blockSize(), options.doubleQuant());
                } else {
                    kept += t.data().byteSize();
                }
            }
            return new Summary(quantized, checkpoint.tensors().size() - quantized, checkpoint.dataBytes(), bytesOut,
                    elements, payload, kept, Map.copyOf(errors));
        }
    }

    private Quantizer() {}

    /** The tensors to write for a checkpoint, in its order. */
    public static List<TensorToWrite> plan(Checkpoint checkpoint, Options options) {
        List<TensorToWrite> tensors = new ArrayList<>();
        for (SafetensorsTensor t : checkpoint.tensors()) {
            if (options.quantize().test(t)) {
                if (t.dtype().floatType().isEmpty()) {
                    throw new IllegalArgumentException("tensor '" + t.name() + "' is " + t.dtype()
                            + "; only F32, F16 and BF16 tensors can be quantized");
                }
                tensors.add(TensorToWrite.nf4(t.name(), t.shape(), t.dtype(), t.data(), options.blockSize(),
                        options.doubleQuant(), options.scaleRule()));
            } else {
                tensors.add(TensorToWrite.raw(t.name(), t.shape(), t.dtype(), t.data()));
            }
        }
        return tensors;
    }

    /** Quantizes {@code checkpoint} into {@code target}; the target appears only when complete. */
    public static Summary quantize(Checkpoint checkpoint, Path target, Options options) throws IOException {
        List<TensorToWrite> tensors = plan(checkpoint, options);
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("model_name", modelName(checkpoint.source()));
        metadata.put("model_type", checkpoint.metadata().getOrDefault("model_type", "unknown"));
        metadata.put("compute_dtype", "BF16");
        metadata.put("source", checkpoint.source().getFileName().toString());
        metadata.put("producer", "qnat " + Qnat.VERSION);
        metadata.put("created", Instant.now().toString());
        Map<String, QuantizationError> errors = QnatWriter.write(target, metadata, tensors, options.threads(),
                options.progress(), checkpoint.files(), options.measure());
        return Summary.of(checkpoint, options, java.nio.file.Files.size(target), errors);
    }

    private static String modelName(Path source) {
        Path absolute = source.toAbsolutePath();
        Path folder = absolute.getParent();
        return folder != null && folder.getFileName() != null ? folder.getFileName().toString()
                : absolute.getFileName().toString();
    }
}
