package dev.qnat.bnb;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import dev.qnat.format.DType;
import dev.qnat.fuzz.BoundedFuzzTest;
import dev.qnat.fuzz.FuzzDirectory;
import dev.qnat.format.FormatException;
import dev.qnat.format.TensorToWrite;
import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.Nf4;
import dev.qnat.nf4.Nf4Codebook;
import dev.qnat.safetensors.Checkpoint;
import dev.qnat.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The bitsandbytes importer (and the safetensors file under it) on arbitrary bytes, and on arbitrary shapes. */
class BitsandbytesFuzzTest {
    private static final Path DIR = FuzzDirectory.create("qnat-fuzz-bnb");
    /** Shapes with at most this many elements get parts of the right sizes, so the import can go through. */
    private static final long MAX_CONSISTENT_ELEMENTS = 1 << 16;

    @BoundedFuzzTest
    void importer(byte[] input) throws IOException {
        Path file = DIR.resolve("input.safetensors");
        Files.write(file, input);
        importOrRefuse(file);
    }

    /**
     * A well-formed checkpoint but for the quant_state's shape: huge, negative, zero, past 2^63, with
     * more dimensions than QNAT allows. Where the shape is small the parts fit it, so the import goes on.
     */
    @BoundedFuzzTest
    void shapes(FuzzedDataProvider data) throws IOException {
        int blockSize = data.pickValue(new int[] {2, 64, 4096});
        boolean nested = data.consumeBoolean();
        List<String> dims = new ArrayList<>();
        int rank = data.consumeInt(0, TensorToWrite.MAX_RANK + 2);
        long elements = 1;
        for (int d = 0; d < rank; d++) {
            long dim = switch (data.consumeInt(0, 3)) {
                case 0 -> data.consumeLong(-2, 300);
                case 1 -> 1L << data.consumeInt(0, 63);
                case 2 -> data.consumeLong();
                default -> -1; // written as a number past 2^63
            };
            dims.add(dim == -1 ? "1" + "0".repeat(data.consumeInt(19, 40)) : Long.toString(dim));
            elements = dim < 0 || elements < 0 ? -1 : dim == 0 || elements == 0 ? 0
                    : elements > MAX_CONSISTENT_ELEMENTS / dim ? -1 : elements * dim;
        }
        String state = "{\"quant_type\": \"nf4\", \"blocksize\": " + blockSize + ", \"dtype\": \"float16\", \"shape\": "
                + dims.toString() + (nested ? ", \"nested_blocksize\": 256, \"nested_offset\": 0.5}" : "}");
        long n = elements >= 0 ? elements : data.consumeInt(0, 1000);
        long blocks = Nf4.blockCount(n, blockSize);
        List<SafetensorsWriter.Entry> tensors = new ArrayList<>();
        tensors.add(part("w", DType.U8, Nf4.packedSize(n)));
        tensors.add(part("w.absmax", nested ? DType.U8 : DType.F32, nested ? blocks : blocks * 4));
        MemorySegment codebook = MemorySegment.ofArray(new float[Nf4Codebook.LEVELS]);
        MemorySegment.copy(Nf4Codebook.levels(), 0, codebook, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN),
                0, Nf4Codebook.LEVELS);
        tensors.add(SafetensorsWriter.Entry.copy("w.quant_map", DType.F32, new long[] {Nf4Codebook.LEVELS}, codebook));
        if (nested) {
            tensors.add(part("w.nested_absmax", DType.F32, 4 * DoubleQuantization.groupCount(blocks)));
            tensors.add(part("w.nested_quant_map", DType.F32, 4L * DoubleQuantization.TABLE_SIZE));
        }
        byte[] json = state.getBytes(StandardCharsets.UTF_8);
        tensors.add(SafetensorsWriter.Entry.copy("w.quant_state.bitsandbytes__nf4", DType.U8, new long[] {json.length},
                MemorySegment.ofArray(json)));
        Path file = DIR.resolve("shapes.safetensors");
        SafetensorsWriter.write(file, Map.of(), tensors);
        importOrRefuse(file);
    }

    private static SafetensorsWriter.Entry part(String name, DType dtype, long bytes) {
        return SafetensorsWriter.Entry.copy(name, dtype, new long[] {bytes * 8 / dtype.bits()},
                MemorySegment.ofArray(new byte[(int) bytes]));
    }

    private static void importOrRefuse(Path file) throws IOException {
        try (Checkpoint checkpoint = Checkpoint.open(file)) {
            BitsandbytesImport.plan(checkpoint);
        } catch (FormatException expected) {
            // the documented answer to bad input
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
