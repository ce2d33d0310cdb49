package dev.qnat.cli;

import dev.qnat.format.DType;
import dev.qnat.nf4.FloatType;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * A deterministic checkpoint shaped like a small Llama-style language model, in BF16: embeddings, for
 * each block the attention and MLP projections and two norms, a final norm and the output head.
 * Weights are N(0, 0.02) with one in ten thousand an outlier twenty times larger; norms are near 1.
 */
final class DemoCheckpoint {
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    record Tensor(String name, long[] shape, boolean norm) {}

    private DemoCheckpoint() {}

    static List<Tensor> layout(int layers, int hidden, int vocab) {
        int intermediate = hidden * 11 / 4;
        List<Tensor> tensors = new ArrayList<>();
        tensors.add(new Tensor("model.embed_tokens.weight", new long[] {vocab, hidden}, false));
        for (int i = 0; i < layers; i++) {
            String p = "model.layers." + i + ".";
            for (String proj : new String[] {"q_proj", "k_proj", "v_proj", "o_proj"}) {
                tensors.add(new Tensor(p + "self_attn." + proj + ".weight", new long[] {hidden, hidden}, false));
            }
            tensors.add(new Tensor(p + "mlp.gate_proj.weight", new long[] {intermediate, hidden}, false));
            tensors.add(new Tensor(p + "mlp.up_proj.weight", new long[] {intermediate, hidden}, false));
            tensors.add(new Tensor(p + "mlp.down_proj.weight", new long[] {hidden, intermediate}, false));
            tensors.add(new Tensor(p + "input_layernorm.weight", new long[] {hidden}, true));
            tensors.add(new Tensor(p + "post_attention_layernorm.weight", new long[] {hidden}, true));
        }
        tensors.add(new Tensor("model.norm.weight", new long[] {hidden}, true));
        tensors.add(new Tensor("lm_head.weight", new long[] {vocab, hidden}, false));
        return tensors;
    }

    /** Writes the checkpoint; tensors are generated in parallel, each from its own seed, straight into the file. */
    static long write(Path file, int layers, int hidden, int vocab) throws IOException {
        List<Tensor> tensors = layout(layers, hidden, vocab);
        List<SafetensorsWriter.Entry> entries = tensors.stream()
                .map(t -> SafetensorsWriter.Entry.slot(t.name(), DType.BF16, t.shape())).toList();
        SafetensorsWriter.write(file, Map.of("format", "pt", "generator", "qnat demo"), entries, slices ->
                IntStream.range(0, tensors.size()).parallel().forEach(i -> fill(tensors.get(i), i, slices.get(tensors.get(i)
                        .name()))));
        return tensors.stream().mapToLong(t -> t.shape().length == 1 ? t.shape()[0] : t.shape()[0] * t.shape()[1]).sum();
    }

    private static void fill(Tensor t, int index, MemorySegment destination) {
        SplittableRandom random = new SplittableRandom(0x5eed + index);
        long count = destination.byteSize() / 2;
        for (long i = 0; i < count; i++) {
            double x = t.norm() ? 1 + 0.05 * random.nextGaussian()
                    : 0.02 * random.nextGaussian() * (random.nextInt(10_000) == 0 ? 20 : 1);
            destination.setAtIndex(HALF, i, FloatType.BF16.floatToHalfBits((float) x));
        }
    }
}
