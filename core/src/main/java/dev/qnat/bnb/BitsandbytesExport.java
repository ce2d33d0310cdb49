package dev.qnat.bnb;

import dev.qnat.concurrent.Workers;
import dev.qnat.convert.Quantizer;
import dev.qnat.format.DType;
import dev.qnat.format.NonFiniteTensorException;
import dev.qnat.io.AtomicMappedFile;
import dev.qnat.io.FileSnapshot;
import dev.qnat.io.OutputTarget;
import dev.qnat.io.Prefault;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.nf4.ScaleRule;
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
    /** Elements per call when only the absmax values are wanted: the codes buffer stays in cache. */
    private static final long OFFSET_CHUNK_ELEMENTS = 1 << 16;
    /** The file written beside the model: the block to merge into the model's config.json. */
    public static final String CONFIG_NAME = "quantization_config.json";

    private BitsandbytesExport() {}

    /**
     * Exports {@code checkpoint} to {@code target} with the block size, double quantization and tensor
     * selection of {@code options}; also writes {@code quantization_config.json} beside the target, the
     * block to merge into the model's config.json.
     *
     * @param checkpoint the open floating checkpoint; neither output may be one of its files
     * @param target the safetensors file to create or replace; {@value #CONFIG_NAME} goes in the same folder
     * @param options the selection, block size, double quantization, scale rule, threads and progress to use;
     *                {@link Quantizer.Options#measure()} is ignored
     * @return what was quantized and kept, {@code bytesOut} the model file's size; no errors, none measured
     * @throws IllegalArgumentException the selection picks a tensor that is not F32, F16 or BF16
     * @throws NonFiniteTensorException a tensor to quantize holds a NaN or an infinity
     * @throws IOException an output is refused (the target named {@value #CONFIG_NAME}, say) or cannot be
     *                     written, or a checkpoint file changed while it was read; the model is put in
     *                     place only once both files are complete
     */
    public static Quantizer.Summary export(Checkpoint checkpoint, Path target, Quantizer.Options options)
            throws IOException {
        // Both outputs are checked before the first pass, which reads every quantized tensor once.
        Path model = OutputTarget.resolve(target, checkpoint.files());
        Path configFile = OutputTarget.resolve(model.resolveSibling(CONFIG_NAME), checkpoint.files());
        if (configFile.equals(model)) {
            throw new OutputTarget.OutputRefusedException(target, "is where the " + CONFIG_NAME
                    + " written beside the model goes; give the model another name");
        }
        List<SafetensorsTensor> quantized = new ArrayList<>();
        for (SafetensorsTensor t : checkpoint.tensors()) {
            if (options.quantize().test(t)) {
                t.dtype().floatType().orElseThrow(() -> new IllegalArgumentException("tensor '" + t.name() + "' is "
                        + t.dtype() + "; only F32, F16 and BF16 tensors can be quantized"));
                quantized.add(t);
            }
        }
        try (Workers workers = new Workers("qnat-bnb-export", options.threads())) {
            Map<String, byte[]> states;
            try {
                states = states(quantized, options, workers);
            } catch (InternalError e) {
                throw FileSnapshot.mappedReadFailed(e, checkpoint.files());
            }
            List<Entry> entries = new ArrayList<>();
            for (SafetensorsTensor t : checkpoint.tensors()) {
                byte[] state = states.get(t.name());
                if (state == null) {
                    entries.add(Entry.copy(t.name(), t.dtype(), t.shape(), t.data()));
                    continue;
                }
                long n = t.elementCount();
                long blocks = Nf4.blockCount(n, options.blockSize());
                String p = t.name();
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
            String config = BitsandbytesNf4.quantizationConfig(options.doubleQuant());
            byte[] configBytes = config.getBytes(StandardCharsets.UTF_8);
            try (AtomicMappedFile.Prepared modelFile = SafetensorsWriter.prepare(model, Map.of("format", "pt"), entries,
                    slices -> fillAll(checkpoint, quantized, states, options, workers, slices), checkpoint.files());
                 AtomicMappedFile.Prepared configPrepared = AtomicMappedFile.prepare(configFile, configBytes.length,
                    file -> MemorySegment.copy(configBytes, 0, file, ValueLayout.JAVA_BYTE, 0, configBytes.length),
                    List.of())) {
                // The model first: a config beside no model would say there is one.
                modelFile.commit();
                configPrepared.commit();
            }
            return Quantizer.Summary.of(checkpoint, options, Files.size(model), Map.of());
        }
    }

    private static void fillAll(Checkpoint checkpoint, List<SafetensorsTensor> quantized, Map<String, byte[]> states,
                                Quantizer.Options options, Workers workers, Map<String, MemorySegment> slices)
            throws IOException {
        List<Runnable> tasks = new ArrayList<>();
        for (SafetensorsTensor t : checkpoint.tensors()) {
            if (!states.containsKey(t.name())) {
                tasks.add(() -> slices.get(t.name()).copyFrom(t.data()));
            }
        }
        List<Prefault.Range> pages = new ArrayList<>();
        for (SafetensorsTensor t : quantized) {
            tasks.add(() -> {
                fill(t, options, slices, states.get(t.name()));
                options.progress().advance(t.data().byteSize());
            });
            pages.add(new Prefault.Range(t.data(), false));
            pages.add(new Prefault.Range(slices.get(t.name()), true));
        }
        try (Prefault.Ahead ahead = Prefault.ahead(pages)) {
            workers.runAll(tasks);
        }
    }

    /**
     * Each quantized tensor's quant_state JSON. With double quantization it holds the offset, the mean of
     * the tensor's absmax values, and its length decides the layout: so every tensor is quantized once
     * here (on the workers, tensor by tensor) before the file is laid out, and again into the file.
     */
    private static Map<String, byte[]> states(List<SafetensorsTensor> quantized, Quantizer.Options options,
                                              Workers workers) throws IOException {
        Float[] offsets = new Float[quantized.size()];
        if (options.doubleQuant()) {
            List<Runnable> tasks = new ArrayList<>();
            for (int i = 0; i < quantized.size(); i++) {
                int index = i;
                SafetensorsTensor t = quantized.get(i);
                tasks.add(() -> offsets[index] = doubleQuantOffset(t, t.dtype().floatType().orElseThrow(),
                        options.blockSize(), Nf4.blockCount(t.elementCount(), options.blockSize()), options.scaleRule()));
            }
            workers.runAll(tasks);
        }
        Map<String, byte[]> states = new LinkedHashMap<>();
        for (int i = 0; i < quantized.size(); i++) {
            SafetensorsTensor t = quantized.get(i);
            states.put(t.name(), BitsandbytesNf4.stateJson(options.blockSize(), t.dtype(), t.shape(), offsets[i])
                    .getBytes(StandardCharsets.UTF_8));
        }
        return states;
    }

    /**
     * The offset of the double quantization, which the quant_state JSON (laid out first) must hold: only
     * the absmax values are kept, the codes go through one small buffer, a chunk of blocks at a time.
     */
    private static float doubleQuantOffset(SafetensorsTensor t, FloatType type, int blockSize, long blocks,
                                           ScaleRule rule) {
        long blocksPerChunk = Math.max(1, OFFSET_CHUNK_ELEMENTS / blockSize);
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment absmax = scratch.allocate(4 * blocks);
            MemorySegment codes = scratch.allocate(Nf4.packedSize(blocksPerChunk * blockSize));
            for (long first = 0; first < blocks; first += blocksPerChunk) {
                long end = Math.min(blocks, first + blocksPerChunk);
                long from = first * blockSize;
                long to = Math.min(t.elementCount(), end * blockSize);
                MemorySegment values = t.data().asSlice(type.byteSize() * from, type.byteSize() * (to - from));
                MemorySegment chunkScales = absmax.asSlice(4 * first, 4 * (end - first));
                try {
                    if (rule == ScaleRule.MSE) {
                        Nf4.mseScales(values, type, blockSize, 0, end - first, chunkScales);
                    } else {
                        Nf4.quantizeBlocks(values, type, blockSize, 0, end - first,
                                codes.asSlice(0, Nf4.packedSize(to - from)), chunkScales);
                    }
                } catch (NonFiniteValueException e) {
                    throw new NonFiniteTensorException(t.name(), new NonFiniteValueException(from + e.index(), e.value()));
                }
            }
            return DoubleQuantization.offset(absmax, blocks);
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
                MemorySegment scales = scratch.allocate(4 * blocks);
                MemorySegment scaleCodes = slices.get(p + BitsandbytesNf4.ABSMAX);
                MemorySegment nested = slices.get(p + BitsandbytesNf4.NESTED_ABSMAX);
                if (options.scaleRule() == ScaleRule.MSE) {
                    // The codes are chosen against the scales as stored (src/spec/nf4-codec.md, "MSE scales").
                    try {
                        Nf4.mseScales(t.data(), type, options.blockSize(), 0, blocks, scales);
                    } catch (NonFiniteValueException e) {
                        throw new NonFiniteTensorException(t.name(), e);
                    }
                    DoubleQuantization.quantizeToStored(scales, blocks, scaleCodes, nested);
                    Nf4.encodeBlocks(t.data(), type, options.blockSize(), 0, blocks, scales, codes, null);
                } else {
                    quantize(t, type, options.blockSize(), codes, scales, ScaleRule.ABSMAX);
                    DoubleQuantization.quantize(scales, blocks, scaleCodes, nested);
                }
            }
            MemorySegment.copy(DoubleQuantization.table(), 0, slices.get(p + BitsandbytesNf4.NESTED_QUANT_MAP), F32, 0,
                    DoubleQuantization.TABLE_SIZE);
        } else {
            quantize(t, type, options.blockSize(), codes, slices.get(p + BitsandbytesNf4.ABSMAX), options.scaleRule());
        }
        Nf4.swapNibbles(codes, codes);
        MemorySegment.copy(Nf4Codebook.levels(), 0, slices.get(p + BitsandbytesNf4.QUANT_MAP), F32, 0, Nf4Codebook.LEVELS);
        MemorySegment.copy(state, 0, slices.get(p + BitsandbytesNf4.STATE_SUFFIX), ValueLayout.JAVA_BYTE, 0, state.length);
    }

    private static void quantize(SafetensorsTensor t, FloatType type, int blockSize, MemorySegment codes,
                                 MemorySegment scales, ScaleRule rule) {
        try {
            Nf4.quantizeBlocks(t.data(), type, blockSize, 0, Nf4.blockCount(t.elementCount(), blockSize), codes, scales,
                    rule, null);
        } catch (NonFiniteValueException e) {
            throw new NonFiniteTensorException(t.name(), e);
        }
    }
}
