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
     * How to quantize a checkpoint; {@link #defaults()} gives the usual choices, the {@code with...}
     * methods change one at a time.
     *
     * @param blockSize NF4 block size: elements per block, an even number from 2 to 2^20
     * @param doubleQuant whether to double-quantize the scales
     * @param threads worker threads, at least 1
     * @param quantize which tensors become NF4 (others are kept); must pick only F32, F16 or BF16 tensors
     * @param progress told of input bytes as they are processed
     * @param measure whether to measure each quantized tensor's error while quantizing it
     * @param scaleRule how each block's scale is chosen
     */
    public record Options(int blockSize, boolean doubleQuant, int threads, Predicate<SafetensorsTensor> quantize,
                          QnatWriter.Progress progress, boolean measure, ScaleRule scaleRule) {
        /**
         * Checks the options.
         *
         * @throws IllegalArgumentException the block size is not an even number from 2 to 2^20, or threads is below 1
         * @throws NullPointerException {@code quantize}, {@code progress} or {@code scaleRule} is null
         */
        public Options {
            Nf4.checkBlockSize(blockSize);
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be at least 1, got " + threads);
            }
            Objects.requireNonNull(quantize, "quantize");
            Objects.requireNonNull(progress, "progress");
            Objects.requireNonNull(scaleRule, "scaleRule");
        }

        /**
         * Block 64, double quantization, all cores, float matrices, no progress reports, not measured, absmax.
         *
         * @return bitsandbytes' defaults ({@link #FLOAT_MATRICES} selected), one thread per available processor
         */
        public static Options defaults() {
            return new Options(Nf4.DEFAULT_BLOCK_SIZE, true, Runtime.getRuntime().availableProcessors(), FLOAT_MATRICES,
                    QnatWriter.Progress.NONE, false, ScaleRule.ABSMAX);
        }

        /**
         * These options with another value for the NF4 block size.
         *
         * @param value an even number from 2 to 2^20
         * @return a copy of these options with only that changed
         * @throws IllegalArgumentException {@code value} is not a valid block size
         */
        public Options withBlockSize(int value) {
            return new Options(value, doubleQuant, threads, quantize, progress, measure, scaleRule);
        }

        /**
         * These options with another value for whether the scales are double-quantized.
         *
         * @param value true to double-quantize them
         * @return a copy of these options with only that changed
         */
        public Options withDoubleQuant(boolean value) {
            return new Options(blockSize, value, threads, quantize, progress, measure, scaleRule);
        }

        /**
         * These options with another value for the number of worker threads.
         *
         * @param value at least 1
         * @return a copy of these options with only that changed
         * @throws IllegalArgumentException {@code value} is below 1
         */
        public Options withThreads(int value) {
            return new Options(blockSize, doubleQuant, value, quantize, progress, measure, scaleRule);
        }

        /**
         * These options with another value for which tensors become NF4.
         *
         * @param value true for each tensor to quantize; must pick only F32, F16 or BF16 tensors
         * @return a copy of these options with only that changed
         * @throws NullPointerException {@code value} is null
         */
        public Options withSelection(Predicate<SafetensorsTensor> value) {
            return new Options(blockSize, doubleQuant, threads, value, progress, measure, scaleRule);
        }

        /**
         * These options with another value for what is told of progress.
         *
         * @param value told of input bytes as they are processed; {@link QnatWriter.Progress#NONE} for nothing
         * @return a copy of these options with only that changed
         * @throws NullPointerException {@code value} is null
         */
        public Options withProgress(QnatWriter.Progress value) {
            return new Options(blockSize, doubleQuant, threads, quantize, value, measure, scaleRule);
        }

        /**
         * These options with another value for how each block's scale is chosen.
         *
         * @param value the rule for every quantized tensor
         * @return a copy of these options with only that changed
         * @throws NullPointerException {@code value} is null
         */
        public Options withScaleRule(ScaleRule value) {
            return new Options(blockSize, doubleQuant, threads, quantize, progress, measure, value);
        }

        /**
         * These options with another value for whether each quantized tensor's error is measured.
         *
         * @param value true to measure it while quantizing, for {@link Summary#errors()}
         * @return a copy of these options with only that changed
         */
        public Options withMeasure(boolean value) {
            return new Options(blockSize, doubleQuant, threads, quantize, progress, value, scaleRule);
        }
    }

    /**
     * What a quantization did.
     *
     * @param quantized tensors quantized to NF4
     * @param kept tensors kept as they were
     * @param bytesIn bytes of tensor data in the checkpoint, headers not counted
     * @param bytesOut bytes of the file written, whole
     * @param quantizedElements elements of the quantized tensors
     * @param payloadBytes bytes of the quantized tensors' codes and scales, tables and headers not counted
     * @param keptBytes bytes of the tensors kept as they were
     * @param errors by tensor name, each quantized tensor's error as read back from the file; empty
     *               unless the options asked to measure
     */
    public record Summary(int quantized, int kept, long bytesIn, long bytesOut, long quantizedElements,
                          long payloadBytes, long keptBytes, Map<String, QuantizationError> errors) {

        /**
         * The summary of writing {@code checkpoint} with {@code options} into {@code bytesOut} bytes, QNAT or
         * bitsandbytes alike: {@code payloadBytes} are the quantized tensors' codes and scales
         * ({@link TensorToWrite#payloadBytes}), {@code keptBytes} the data of the tensors kept as they were.
         *
         * @param checkpoint the checkpoint that was written
         * @param options the options it was written with, whose selection tells quantized from kept tensors
         * @param bytesOut the size in bytes of the file written (the model file, for a bitsandbytes export)
         * @param errors by tensor name, the measured errors; empty when none were measured; copied
         * @return the summary, counted from {@code checkpoint} and {@code options}
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

    /**
     * The tensors to write for a checkpoint, in its order.
     *
     * @param checkpoint the open checkpoint, whose tensors' data the plan reads when it is written
     * @param options the selection, block size, double quantization and scale rule to plan with
     * @return one tensor per checkpoint tensor: NF4 for those the selection picks, RAW for the others
     * @throws IllegalArgumentException the selection picks a tensor that is not F32, F16 or BF16, or a tensor
     *                                  breaks a rule of {@link TensorToWrite}
     */
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

    /**
     * Quantizes {@code checkpoint} into {@code target}; the target appears only when complete.
     *
     * @param checkpoint the open checkpoint to read; the target may not be one of its files
     * @param target the QNAT file to create or replace
     * @param options what to quantize and how
     * @return what was quantized and kept, the sizes, and the errors if {@code options} asked to measure
     * @throws IllegalArgumentException the selection picks a tensor that is not F32, F16 or BF16
     * @throws dev.qnat.format.NonFiniteTensorException a tensor to quantize holds a NaN or an infinity
     * @throws IOException the target is refused or cannot be written, or a checkpoint file changed while
     *                     it was read; the target is left as it was
     */
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
