package dev.qnat.cli;

import dev.qnat.bnb.BitsandbytesTensor;
import dev.qnat.format.Encoding;
import dev.qnat.format.FormatException;
import dev.qnat.format.QnatTensor;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.safetensors.SafetensorsTensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Locale;

/** Reconstruction error of quantized tensors against their originals, read chunk by chunk. */
final class Comparison {
    private static final int CHUNK = 1 << 16;

    /** Error figures of one tensor, or of several summed (named "all"). */
    record Stats(String name, QuantizationError error) {
        long count() {
            return error.count();
        }

        double sumSquaredError() {
            return error.sumSquaredError();
        }

        double sumSquaredSignal() {
            return error.sumSquaredSignal();
        }

        double maxAbsError() {
            return error.maxAbsError();
        }

        Stats plus(Stats other) {
            QuantizationError sum = new QuantizationError();
            sum.add(error);
            sum.add(other.error);
            return new Stats("all", sum);
        }

        String line() {
            return String.format(Locale.ROOT, "RMSE %.3e, max |error| %.3e, SNR %.2f dB", error.rmse(),
                    error.maxAbsError(), error.snrDb());
        }

        String json() {
            return String.format(Locale.ROOT, "{\"tensor\": %s, \"elements\": %d, \"rmse\": %s, \"max_abs_error\": %s, "
                    + "\"snr_db\": %s}", Json.string(name), error.count(), Json.number(error.rmse()),
                    Json.number(error.maxAbsError()), Json.number(error.snrDb()));
        }
    }

    private Comparison() {}

    /** Reads values {@code [from, from + out.length)} of a tensor as floats. */
    interface Values {
        long count();

        /** Reads chunks starting at multiples of {@link #alignment()}. */
        int alignment();

        void read(long from, float[] out, int length) throws FormatException;
    }

    static Values of(SafetensorsTensor tensor) {
        FloatType type = tensor.dtype().floatType().orElseThrow(() -> new IllegalArgumentException("tensor '"
                + tensor.name() + "' is " + tensor.dtype() + ", not a float tensor"));
        return raw(tensor.data(), type, tensor.elementCount());
    }

    private static Values raw(MemorySegment data, FloatType type, long count) {
        return new Values() {
            public long count() {
                return count;
            }

            public int alignment() {
                return 1;
            }

            public void read(long from, float[] out, int length) {
                for (int i = 0; i < length; i++) {
                    out[i] = type.read(data, from + i);
                }
            }
        };
    }

    /** A QNAT tensor's values: dequantized chunk by chunk for NF4 (the absmax lives in {@code arena}). */
    static Values of(QnatTensor tensor, Arena arena) throws FormatException {
        if (tensor.encoding() == Encoding.RAW) {
            FloatType type = tensor.dtype().floatType().orElseThrow(() -> new IllegalArgumentException("tensor '"
                    + tensor.name() + "' is " + tensor.dtype() + ", not a float tensor"));
            return raw(tensor.data(), type, tensor.elementCount());
        }
        MemorySegment codes = tensor.data();
        MemorySegment absmax = tensor.absmax(arena);
        int blockSize = tensor.blockSize();
        return new Values() {
            public long count() {
                return tensor.elementCount();
            }

            public int alignment() {
                return blockSize;
            }

            public void read(long from, float[] out, int length) {
                long firstBlock = from / blockSize;
                MemorySegment chunkCodes = codes.asSlice(from / 2, Nf4.packedSize(length));
                MemorySegment chunkAbsmax = absmax.asSlice(4 * firstBlock, 4 * Nf4.blockCount(length, blockSize));
                Nf4.dequantize(chunkCodes, chunkAbsmax, blockSize, MemorySegment.ofArray(out).asSlice(0, 4L * length),
                        FloatType.F32);
            }
        };
    }

    /** A bitsandbytes NF4 tensor's values, dequantized chunk by chunk. */
    static Values of(BitsandbytesTensor tensor) {
        return new Values() {
            public long count() {
                return tensor.tensor().elementCount();
            }

            public int alignment() {
                return tensor.tensor().blockSize();
            }

            public void read(long from, float[] out, int length) {
                tensor.read(from, MemorySegment.ofArray(out).asSlice(0, 4L * length), FloatType.F32);
            }
        };
    }

    static Stats compare(String name, Values original, Values quantized) throws FormatException {
        if (original.count() != quantized.count()) {
            throw new IllegalArgumentException("tensor '" + name + "' has " + original.count() + " elements in one file and "
                    + quantized.count() + " in the other");
        }
        int alignment = Math.max(original.alignment(), quantized.alignment());
        int chunk = Math.max(alignment, CHUNK / alignment * alignment);
        float[] a = new float[chunk];
        float[] b = new float[chunk];
        QuantizationError error = new QuantizationError();
        for (long from = 0; from < original.count(); from += chunk) {
            int length = (int) Math.min(chunk, original.count() - from);
            original.read(from, a, length);
            quantized.read(from, b, length);
            Nf4.measureError(MemorySegment.ofArray(a).asSlice(0, 4L * length), MemorySegment.ofArray(b), error);
        }
        return new Stats(name, error);
    }

    static Stats total(List<Stats> all) {
        return all.stream().reduce(new Stats("all", new QuantizationError()), Stats::plus);
    }

    /** The tensor with the lowest SNR. */
    static Stats worst(List<Stats> all) {
        return all.stream().min((x, y) -> Double.compare(x.error().snrDb(), y.error().snrDb())).orElse(null);
    }
}
