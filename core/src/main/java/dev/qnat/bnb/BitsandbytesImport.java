package dev.qnat.bnb;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.exc.StreamReadException;
import dev.qnat.Qnat;
import dev.qnat.convert.Dequantizer;
import dev.qnat.format.DType;
import dev.qnat.format.ElementCount;
import dev.qnat.format.FormatException;
import dev.qnat.format.QnatWriter;
import dev.qnat.format.TensorToWrite;
import dev.qnat.internal.JsonInput;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsTensor;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads a bitsandbytes NF4 checkpoint (as transformers saves it, double-quantized or not) into a QNAT
 * file with identical codes and scales: the codes are turned to QNAT's nibble order, everything else is
 * stored as it is, the double-quantization table included. Tensors outside the 4-bit state are kept RAW.
 */
public final class BitsandbytesImport {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * What an import found.
     *
     * @param quantized NF4 weights imported, each from its codes and 4-bit state tensors
     * @param kept tensors outside the 4-bit state, stored RAW
     */
    public record Summary(int quantized, int kept) {}

    private record State(int blockSize, DType dtype, long[] shape, boolean nested, float offset) {}

    private BitsandbytesImport() {}

    /**
     * The tensors of a bitsandbytes checkpoint as QNAT would store them, in checkpoint order.
     *
     * @param checkpoint the open checkpoint, whose tensors the plan's sections are views of
     * @return one NF4 tensor (its {@link TensorToWrite#encoded()} set, codes high nibble first) per quant_state,
     *         where its codes tensor stands, and every tensor outside the 4-bit state RAW; the state's own
     *         tensors (absmax, quant_map, nested ones, quant_state) are not listed
     * @throws FormatException a quant_state is not valid JSON, is not nf4, or has an unsupported block size,
     *                         dtype, shape or nested quantization; or a part of the state is missing, has the wrong
     *                         dtype or size, or a quant_map is not the NF4 codebook
     */
    public static List<TensorToWrite> plan(Checkpoint checkpoint) throws FormatException {
        Set<String> consumed = new HashSet<>();
        Map<String, TensorToWrite> quantized = new LinkedHashMap<>();
        for (SafetensorsTensor t : checkpoint.tensors()) {
            if (!t.name().endsWith(BitsandbytesNf4.STATE_SUFFIX)) {
                continue;
            }
            String p = t.name().substring(0, t.name().length() - BitsandbytesNf4.STATE_SUFFIX.length());
            String where = checkpoint.source() + ": tensor '" + p + "'";
            State state = parseState(where, t.data().toArray(ValueLayout.JAVA_BYTE));
            long n;
            try {
                n = ElementCount.of(p, state.shape());
            } catch (IllegalArgumentException e) {
                throw new FormatException(checkpoint.source() + ": " + e.getMessage() + " (its quant_state)", e);
            }
            long blocks = Nf4.blockCount(n, state.blockSize());
            MemorySegment codes = part(checkpoint, where, p, "", DType.U8, Nf4.packedSize(n), consumed);
            MemorySegment absmax = part(checkpoint, where, p, BitsandbytesNf4.ABSMAX, state.nested() ? DType.U8 : DType.F32,
                    state.nested() ? blocks : 4 * blocks, consumed);
            MemorySegment quantMap = part(checkpoint, where, p, BitsandbytesNf4.QUANT_MAP, DType.F32, 4L * Nf4Codebook.LEVELS,
                    consumed);
            if (!Arrays.equals(quantMap.toArray(F32), Nf4Codebook.levels())) {
                throw new FormatException(where + ": quant_map is not the NF4 codebook; qnat stores NF4 with its fixed levels");
            }
            MemorySegment nested = null;
            MemorySegment table = null;
            if (state.nested()) {
                nested = part(checkpoint, where, p, BitsandbytesNf4.NESTED_ABSMAX, DType.F32,
                        4 * DoubleQuantization.groupCount(blocks), consumed);
                table = part(checkpoint, where, p, BitsandbytesNf4.NESTED_QUANT_MAP, DType.F32,
                        4L * DoubleQuantization.TABLE_SIZE, consumed);
            }
            consumed.add(t.name());
            quantized.put(p, TensorToWrite.nf4Encoded(p, state.shape(), state.dtype(), state.blockSize(),
                    new TensorToWrite.Encoded(codes, true, absmax, nested, state.offset(), table)));
        }
        List<TensorToWrite> tensors = new ArrayList<>();
        for (SafetensorsTensor t : checkpoint.tensors()) {
            if (quantized.containsKey(t.name())) {
                tensors.add(quantized.get(t.name()));
            } else if (!consumed.contains(t.name())) {
                tensors.add(TensorToWrite.raw(t.name(), t.shape(), t.dtype(), t.data()));
            }
        }
        return tensors;
    }

    /**
     * Imports {@code checkpoint} into the QNAT file {@code target}.
     *
     * @param checkpoint the open bitsandbytes checkpoint; the target may not be one of its files
     * @param target the QNAT file to create or replace, only once it is complete
     * @param threads worker threads, at least 1
     * @param progress told of input bytes as they are processed
     * @return how many weights were imported as NF4 and how many tensors kept RAW
     * @throws FormatException the checkpoint's 4-bit state is malformed (see {@link #plan})
     * @throws IllegalArgumentException {@code threads} is below 1
     * @throws IOException the target is refused or cannot be written, or a checkpoint file changed while it
     *                     was read; the target is left as it was
     */
    public static Summary toQnat(Checkpoint checkpoint, Path target, int threads, QnatWriter.Progress progress)
            throws IOException {
        List<TensorToWrite> tensors = plan(checkpoint);
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("model_name", checkpoint.source().toAbsolutePath().getFileName().toString());
        metadata.put("compute_dtype", "BF16");
        metadata.put("source", checkpoint.source().getFileName().toString() + " (bitsandbytes NF4)");
        metadata.put("producer", "qnat " + Qnat.VERSION);
        metadata.put("created", Instant.now().toString());
        QnatWriter.write(target, metadata, tensors, threads, progress, checkpoint.files());
        int quantized = (int) tensors.stream().filter(t -> t.encoded() != null).count();
        return new Summary(quantized, tensors.size() - quantized);
    }

    /**
     * Writes a bitsandbytes NF4 checkpoint as plain safetensors: its 4-bit weights dequantized to
     * {@code dtype} (null: each weight's own dtype), everything else copied, as {@code qnat dequantize}
     * does with a QNAT file.
     *
     * @param checkpoint the open bitsandbytes checkpoint; the target may not be one of its files
     * @param target the safetensors file to create or replace, only once it is complete
     * @param dtype the float type of the dequantized weights; null for each weight's own dtype
     * @param allowOverflow write values beyond the dtype's range as infinities (and count them) instead of
     *                      failing with {@link Dequantizer.OverflowException}
     * @return how many tensors were written and how many values overflowed
     * @throws FormatException the checkpoint's 4-bit state is malformed (see {@link #plan})
     * @throws Dequantizer.OverflowException a value exceeds {@code dtype}'s range and {@code allowOverflow} is false
     * @throws IOException the target is refused or cannot be written, or a checkpoint file changed while it
     *                     was read; the target is left as it was
     */
    public static Dequantizer.Summary toSafetensors(Checkpoint checkpoint, Path target, FloatType dtype,
                                                    boolean allowOverflow) throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        Dequantizer.OverflowCounter overflow = new Dequantizer.OverflowCounter(allowOverflow);
        List<BitsandbytesTensor> opened = new ArrayList<>();
        try {
            for (TensorToWrite tensor : plan(checkpoint)) {
                if (tensor.encoded() == null) {
                    entries.add(new SafetensorsWriter.Entry(tensor.name(), tensor.dtype(), tensor.shape(),
                            destination -> destination.copyFrom(tensor.data())));
                    continue;
                }
                BitsandbytesTensor nf4 = new BitsandbytesTensor(tensor);
                opened.add(nf4);
                FloatType out = dtype != null ? dtype : tensor.dtype().floatType().orElseThrow();
                entries.add(new SafetensorsWriter.Entry(tensor.name(), DType.of(out), tensor.shape(), destination -> {
                    nf4.read(0, destination, out);
                    overflow.check(tensor.name(), nf4.absmax(), destination, out);
                }));
            }
            return Dequantizer.write(target, checkpoint.metadata(), entries, checkpoint.files(), overflow);
        } finally {
            opened.forEach(BitsandbytesTensor::close);
        }
    }

    /**
     * Whether a checkpoint holds bitsandbytes 4-bit weights (a quant_state tensor).
     *
     * @param checkpoint the open checkpoint
     * @return true when a tensor's name ends in {@value BitsandbytesNf4#STATE_SUFFIX}; its state is not checked
     */
    public static boolean holdsNf4(Checkpoint checkpoint) {
        return checkpoint.tensors().stream().anyMatch(t -> t.name().endsWith(BitsandbytesNf4.STATE_SUFFIX));
    }

    private static MemorySegment part(Checkpoint checkpoint, String where, String p, String suffix, DType dtype, long bytes,
                                      Set<String> consumed) throws FormatException {
        String name = p + suffix;
        SafetensorsTensor t = checkpoint.tensor(name).orElseThrow(() -> new FormatException(where + ": its 4-bit state has no '"
                + name + "'"));
        if (t.dtype() != dtype || t.data().byteSize() != bytes) {
            throw new FormatException(where + ": '" + name + "' is " + t.dtype() + " of " + t.data().byteSize()
                    + " bytes, expected " + dtype + " of " + bytes);
        }
        consumed.add(name);
        return t.data();
    }

    private static State parseState(String where, byte[] json) throws FormatException {
        String quantType = null;
        String dtype = null;
        long[] shape = null;
        long blockSize = -1;
        long nestedBlockSize = -1;
        Double offset = null;
        try (JsonParser parser = JsonInput.parser(where + ": quant_state", json)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                throw new FormatException(where + ": quant_state is not a JSON object");
            }
            while (parser.nextToken() == JsonToken.FIELD_NAME) {
                String field = parser.currentName();
                JsonToken value = parser.nextToken();
                switch (field) {
                    case "quant_type" -> quantType = parser.getText();
                    case "dtype" -> dtype = parser.getText();
                    case "blocksize" -> blockSize = value == JsonToken.VALUE_NUMBER_INT ? parser.getLongValue() : -1;
                    case "nested_blocksize" -> nestedBlockSize = value == JsonToken.VALUE_NUMBER_INT ? parser.getLongValue() : -1;
                    case "nested_offset" -> offset = value.isNumeric() ? parser.getDoubleValue() : null;
                    case "shape" -> {
                        List<Long> dims = new ArrayList<>();
                        if (value != JsonToken.START_ARRAY) {
                            throw new FormatException(where + ": quant_state shape is not a list");
                        }
                        while (parser.nextToken() == JsonToken.VALUE_NUMBER_INT) {
                            if (dims.size() == TensorToWrite.MAX_RANK) {
                                throw new FormatException(where + ": quant_state shape has more than "
                                        + TensorToWrite.MAX_RANK + " dimensions");
                            }
                            dims.add(parser.getLongValue());
                        }
                        if (parser.currentToken() != JsonToken.END_ARRAY || dims.stream().anyMatch(d -> d < 0)) {
                            throw new FormatException(where + ": quant_state shape is not a list of sizes");
                        }
                        shape = dims.stream().mapToLong(Long::longValue).toArray();
                    }
                    default -> parser.skipChildren();
                }
            }
        } catch (FormatException e) {
            throw e; // says what and where already; the catch of IOException below would wrap it
        } catch (StreamReadException e) {
            throw new FormatException(where + ": quant_state is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new FormatException(where + ": quant_state cannot be read: " + e.getMessage(), e);
        }
        if (!"nf4".equals(quantType)) {
            throw new FormatException(where + ": quant_type " + quantType + " is not supported; qnat imports nf4");
        }
        DType type = dtype == null ? null : BitsandbytesNf4.fromTorchName(dtype);
        if (type == null || shape == null) {
            throw new FormatException(where + ": quant_state lacks a float32/float16/bfloat16 dtype or a shape");
        }
        if (!Nf4.isBlockSize(blockSize)) {
            throw new FormatException(where + ": quant_state blocksize " + blockSize + " is not an even number from 2 to 2^20");
        }
        boolean nested = offset != null || nestedBlockSize >= 0;
        if (nested && (nestedBlockSize != DoubleQuantization.GROUP_SIZE || offset == null || !Double.isFinite(offset))) {
            throw new FormatException(where + ": double quantization with nested_blocksize " + nestedBlockSize
                    + " and nested_offset " + offset + "; qnat reads nested_blocksize 256 with a finite offset");
        }
        return new State((int) blockSize, type, shape, nested, nested ? (float) (double) offset : 0f);
    }
}
