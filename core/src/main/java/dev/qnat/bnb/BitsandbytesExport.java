package dev.qnat.bnb;

import dev.qnat.convert.Quantizer;
import dev.qnat.format.DType;
import dev.qnat.format.NonFiniteTensorException;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.nf4.NonFiniteValueException;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsTensor;
import dev.qnat.safetensors.SafetensorsWriter;
import dev.qnat.safetensors.SafetensorsWriter.Entry;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a checkpoint as a bitsandbytes NF4 safetensors file that transformers loads as it is: for each
 * quantized weight P, its codes (high nibble first), absmax (or double-quantized absmax with nested
 * absmax and map), quant_map and the quant_state JSON; every other tensor copied unchanged. Codes and
 * absmax equal bitsandbytes' quantize_4bit on the same input (see src/spec/nf4-codec.md for the
 * single-ulp exceptions).
 */
public final class BitsandbytesExport {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** What an export wrote. */
    public record Summary(int quantized, int kept, long bytesOut, String quantizationConfig) {}

    private BitsandbytesExport() {}

    /**
     * Exports {@code checkpoint} to {@code target} with the block size, double quantization and tensor
     * selection of {@code options}; also writes {@code quantization_config.json} beside the target, the
     * block to merge into the model's config.json.
     */
    public static Summary export(Checkpoint checkpoint, Path target, Quantizer.Options options) throws IOException {
        List<Entry> entries = new ArrayList<>();
        List<SafetensorsTensor> quantized = new ArrayList<>();
        Map<String, byte[]> states = new LinkedHashMap<>();
        for (SafetensorsTensor t : checkpoint.tensors()) {
            if (!options.quantize().test(t)) {
                entries.add(Entry.copy(t.name(), t.dtype(), t.shape(), t.data()));
                continue;
            }
            FloatType type = t.dtype().floatType().orElseThrow(() -> new IllegalArgumentException("tensor '" + t.name()
                    + "' is " + t.dtype() + "; only F32, F16 and BF16 tensors can be quantized"));
            long n = t.elementCount();
            long blocks = Nf4.blockCount(n, options.blockSize());
            String p = t.name();
            Float offset = options.doubleQuant() ? doubleQuantOffset(t, type, options.blockSize(), blocks) : null;
            byte[] state = BitsandbytesNf4.stateJson(options.blockSize(), t.dtype(), t.shape(), offset)
                    .getBytes(StandardCharsets.UTF_8);
            states.put(p, state);
            quantized.add(t);
            entries.add(Entry.slot(p, DType.U8, new long[] {(n + 1) / 2, 1}));
            entries.add(Entry.slot(p + BitsandbytesNf4.ABSMAX, options.doubleQuant() ? DType.U8 : DType.F32,
                    new long[] {blocks}));
            entries.add(Entry.slot(p + BitsandbytesNf4.QUANT_MAP, DType.F32, new long[] {Nf4Codebook.LEVELS}));
            if (options.doubleQuant()) {
                entries.add(Entry.slot(p + BitsandbytesNf4.NESTED_ABSMAX, DType.F32,
                        new long[] {DoubleQuantization.groupCount(blocks)}));
                entries.add(Entry.slot(p + BitsandbytesNf4.NESTED_QUANT_MAP, DType.F32,
                        new long[] {DoubleQuantization.TABLE_SIZE}));
            }
            entries.add(Entry.slot(p + BitsandbytesNf4.STATE_SUFFIX, DType.U8, new long[] {state.length}));
        }
        SafetensorsWriter.write(target, Map.of("format", "pt"), entries, slices -> {
            for (SafetensorsTensor t : checkpoint.tensors()) {
                if (!states.containsKey(t.name())) {
                    slices.get(t.name()).copyFrom(t.data());
                }
            }
            for (SafetensorsTensor t : quantized) {
                fill(t, options, slices, states.get(t.name()));
                options.progress().advance(t.data().byteSize());
            }
        });
        String config = BitsandbytesNf4.quantizationConfig(options.doubleQuant());
        Path configFile = target.toAbsolutePath().resolveSibling("quantization_config.json");
        Files.writeString(configFile, config);
        int count = quantized.size();
        return new Summary(count, checkpoint.tensors().size() - count, Files.size(target), config);
    }

    /** The offset of the double quantization, which the quant_state JSON (laid out first) must hold. */
    private static float doubleQuantOffset(SafetensorsTensor t, FloatType type, int blockSize, long blocks) {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment codes = scratch.allocate(Nf4.packedSize(t.elementCount()));
            MemorySegment absmax = scratch.allocate(4 * blocks);
            quantize(t, type, blockSize, codes, absmax);
            return DoubleQuantization.quantize(absmax, blocks, scratch.allocate(blocks),
                    scratch.allocate(4 * DoubleQuantization.groupCount(blocks)));
        }
    }

    private static void fill(SafetensorsTensor t, Quantizer.Options options, Map<String, MemorySegment> slices,
                             byte[] state) {
        FloatType type = t.dtype().floatType().orElseThrow();
        String p = t.name();
        long blocks = Nf4.blockCount(t.elementCount(), options.blockSize());
        MemorySegment codes = slices.get(p);
        if (options.doubleQuant()) {
            try (Arena scratch = Arena.ofConfined()) {
                MemorySegment absmax = scratch.allocate(4 * blocks);
                quantize(t, type, options.blockSize(), codes, absmax);
                DoubleQuantization.quantize(absmax, blocks, slices.get(p + BitsandbytesNf4.ABSMAX),
                        slices.get(p + BitsandbytesNf4.NESTED_ABSMAX));
            }
            MemorySegment.copy(DoubleQuantization.table(), 0, slices.get(p + BitsandbytesNf4.NESTED_QUANT_MAP), F32, 0,
                    DoubleQuantization.TABLE_SIZE);
        } else {
            quantize(t, type, options.blockSize(), codes, slices.get(p + BitsandbytesNf4.ABSMAX));
        }
        Nf4.swapNibbles(codes, codes);
        MemorySegment.copy(Nf4Codebook.levels(), 0, slices.get(p + BitsandbytesNf4.QUANT_MAP), F32, 0, Nf4Codebook.LEVELS);
        MemorySegment.copy(state, 0, slices.get(p + BitsandbytesNf4.STATE_SUFFIX), ValueLayout.JAVA_BYTE, 0, state.length);
    }

    private static void quantize(SafetensorsTensor t, FloatType type, int blockSize, MemorySegment codes,
                                 MemorySegment absmax) {
        try {
            Nf4.quantizeBlocks(t.data(), type, blockSize, 0, Nf4.blockCount(t.elementCount(), blockSize), codes, absmax);
        } catch (NonFiniteValueException e) {
            throw new NonFiniteTensorException(t.name(), e);
        }
    }
}
