package dev.qnat.convert;

import dev.qnat.format.DType;
import dev.qnat.format.Encoding;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.io.FileSnapshot;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/** Turns a QNAT file back into a safetensors file: NF4 tensors dequantized, RAW tensors copied as stored. */
public final class Dequantizer {
    /**
     * What a dequantization wrote: {@code overflowed} values became infinities (only when allowed).
     *
     * @param tensors tensors written, NF4 and RAW alike: every tensor of the source
     * @param overflowed values written as infinities because they exceed the dtype's range; 0 unless allowed
     */
    public record Summary(int tensors, long overflowed) {}

    /** Dequantized values too large for the chosen dtype, which would be written as infinities. */
    public static final class OverflowException extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        OverflowException(String message) {
            super(message);
        }
    }

    private Dequantizer() {}

    /**
     * Writes {@code qnat} as safetensors to {@code target}; NF4 tensors become {@code dtype}, or their
     * source dtype when {@code dtype} is null. The file's metadata goes to {@code __metadata__}, with
     * {@code "format": "pt"}, which transformers requires when there is metadata.
     *
     * @param qnat the open QNAT file to read; the target may not be it
     * @param target the safetensors file to create or replace, only once it is complete
     * @param dtype the float type of the dequantized NF4 tensors; null for each tensor's source dtype
     * @param allowOverflow write values beyond the dtype's range as infinities (and count them) instead
     *                      of failing with {@link OverflowException}, the target left as it was
     * @return how many tensors were written and how many values overflowed
     * @throws OverflowException a value exceeds {@code dtype}'s range and {@code allowOverflow} is false
     * @throws dev.qnat.format.FormatException a section of {@code qnat} fails its CRC-32C check when read
     * @throws IOException the target is refused or cannot be written, or {@code qnat} changed while it was
     *                     read; the target is left as it was
     */
    public static Summary toSafetensors(QnatFile qnat, Path target, FloatType dtype, boolean allowOverflow)
            throws IOException {
        List<SafetensorsWriter.Entry> entries = new ArrayList<>();
        OverflowCounter overflow = new OverflowCounter(allowOverflow);
        for (QnatTensor tensor : qnat.tensors()) {
            if (tensor.encoding() == Encoding.RAW) {
                entries.add(SafetensorsWriter.Entry.copy(tensor.name(), tensor.dtype(), tensor.shape(), tensor.data()));
                continue;
            }
            FloatType out = dtype != null ? dtype : tensor.dtype().floatType().orElseThrow();
            if (tensor.hasZeroPoints()) {
                entries.add(new SafetensorsWriter.Entry(tensor.name(), DType.of(out), tensor.shape(), destination -> {
                    tensor.dequantize(destination, out);
                    overflow.check(tensor.name(), null, destination, out);
                }));
            } else {
                entries.add(inPieces(tensor, out, overflow));
            }
        }
        return write(target, qnat.metadata(), entries, qnat.snapshot().stream().toList(), overflow);
    }

    /**
     * An NF4 tensor dequantized a piece of whole blocks at a time (block sizes are even, so each piece's
     * codes start on a byte), its absmax reconstructed once, for the first piece.
     */
    private static SafetensorsWriter.Entry inPieces(QnatTensor tensor, FloatType out, OverflowCounter overflow) {
        int blockSize = tensor.blockSize();
        MemorySegment[] absmax = new MemorySegment[1];
        return SafetensorsWriter.Entry.inPieces(tensor.name(), DType.of(out), tensor.shape(), blockSize * out.byteSize(),
                (piece, offset) -> {
                    if (offset == 0) {
                        absmax[0] = tensor.absmax(Arena.ofAuto());
                    }
                    long first = offset / out.byteSize();
                    long count = piece.byteSize() / out.byteSize();
                    long firstBlock = first / blockSize;
                    MemorySegment scales = absmax[0].asSlice(4 * firstBlock, 4 * Nf4.blockCount(count, blockSize));
                    Nf4.dequantize(tensor.data().asSlice(first / 2, Nf4.packedSize(count)), scales, blockSize, piece, out);
                    overflow.check(tensor.name(), scales, piece, out);
                });
    }

    /**
     * Writes dequantized tensors as safetensors, the source's metadata with {@code "format": "pt"}.
     *
     * @param target the safetensors file to create or replace, only once it is complete
     * @param sourceMetadata the source's metadata, copied to {@code __metadata__} with {@code "format"} set to
     *                       {@code "pt"}
     * @param entries the tensors to write, whose fillers produce the dequantized or copied bytes
     * @param inputs the files the entries read from, checked before and after
     * @param overflow the counter the entries' fillers report to, read for the summary once all are written
     * @return the number of entries written and the overflow count
     * @throws IOException the target is refused or cannot be written, a filler fails, or an input changed
     *                     while it was read; the target is left as it was
     */
    public static Summary write(Path target, Map<String, String> sourceMetadata, List<SafetensorsWriter.Entry> entries,
                                List<FileSnapshot> inputs, OverflowCounter overflow) throws IOException {
        Map<String, String> metadata = new LinkedHashMap<>(sourceMetadata);
        metadata.put("format", "pt");
        SafetensorsWriter.write(target, metadata, entries, inputs);
        return new Summary(entries.size(), overflow.count());
    }

    /**
     * Counts dequantized values that became infinities in a dtype narrower than F32, or refuses them.
     * Only tensors with an absmax beyond the dtype's range are scanned: NF4 levels lie in [-1, 1].
     */
    public static final class OverflowCounter {
        private final boolean allowed;
        private final AtomicLong count = new AtomicLong();

        /**
         * A counter at zero.
         *
         * @param allowed count the infinities instead of failing with {@link OverflowException}
         */
        public OverflowCounter(boolean allowed) {
            this.allowed = allowed;
        }

        /**
         * Checks one tensor's dequantized {@code values}.
         *
         * @param name the tensor's name, for the message
         * @param absmax its f32 absmax values; null to scan in any case (levels shifted by zero points)
         * @param values its dequantized values, {@code type} little-endian
         * @param type the float type of {@code values}; nothing is scanned for F32, which cannot overflow
         * @throws OverflowException {@code values} holds an infinity and overflow is not allowed
         */
        public void check(String name, MemorySegment absmax, MemorySegment values, FloatType type) {
            if (type == FloatType.F32 || absmax != null && !exceeds(absmax, type.maxFinite())) {
                return;
            }
            long infinite = 0;
            for (long i = 0; i < values.byteSize() / type.byteSize(); i++) {
                infinite += Float.isInfinite(type.read(values, i)) ? 1 : 0;
            }
            if (infinite > 0 && !allowed) {
                throw new OverflowException("tensor '" + name + "': " + infinite + " values are beyond " + type
                        + "'s largest finite value " + type.maxFinite() + " and would become infinities; "
                        + "choose a wider dtype, or allow the overflow");
            }
            count.addAndGet(infinite);
        }

        /**
         * Values written as infinities so far.
         *
         * @return the infinities counted over every tensor checked so far; 0 unless overflow is allowed
         */
        public long count() {
            return count.get();
        }

        private static boolean exceeds(MemorySegment absmax, float limit) {
            for (long i = 0; i < absmax.byteSize() / 4; i++) {
                if (Math.abs(FloatType.F32.read(absmax, i)) > limit) {
                    return true;
                }
            }
            return false;
        }
    }
}
