package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.DoubleQuantization;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.Nf4;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Generated tensor sets written and read back: every description, byte and value as expected. */
class QnatRoundTripTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final String[] NAME_PARTS = {"model", "layers", "0", "q_proj", "weight", "模型", "Gewicht-ä", "𝔴", "norm"};
    private static final int[] BLOCK_SIZES = {2, 6, 32, 64, 66, 128, 4096};

    @TempDir
    Path dir;

    static final class Generated {
        final List<TensorToWrite> tensors = new ArrayList<>();
    }

    /** A random set of tensors: NF4 and RAW, every float dtype, empty and scalar shapes, non-ASCII names. */
    static Generated generate(SplittableRandom random, Arena arena) {
        Generated g = new Generated();
        int count = random.nextInt(0, 9);
        for (int t = 0; t < count; t++) {
            String name = t + "." + NAME_PARTS[random.nextInt(NAME_PARTS.length)] + "." + random.nextInt(1000);
            long[] shape = switch (random.nextInt(6)) {
                case 0 -> new long[0];
                case 1 -> new long[] {random.nextInt(0, 3)};
                case 2 -> new long[] {random.nextInt(1, 300)};
                default -> new long[] {random.nextInt(1, 40), random.nextInt(1, 70)};
            };
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            boolean raw = random.nextInt(4) == 0;
            DType dtype = raw ? new DType[] {DType.F32, DType.BF16, DType.I64, DType.U8, DType.BOOL}[random.nextInt(5)]
                    : new DType[] {DType.F32, DType.F16, DType.BF16}[random.nextInt(3)];
            MemorySegment data = arena.allocate(Math.max(1, n * (dtype.bits() / 8)), 8).asSlice(0, n * (dtype.bits() / 8));
            for (long i = 0; i < n; i++) {
                float x = (float) (random.nextGaussian() * 0.02);
                switch (dtype) {
                    case F32 -> data.setAtIndex(F32, i, x);
                    case F16, BF16 -> data.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                            dtype.floatType().orElseThrow().floatToHalfBits(x));
                    default -> {
                        for (long b = 0; b < (dtype.bits() / 8); b++) {
                            data.set(ValueLayout.JAVA_BYTE, i * (dtype.bits() / 8) + b, (byte) random.nextInt());
                        }
                    }
                }
            }
            g.tensors.add(raw ? TensorToWrite.raw(name, shape, dtype, data)
                    : TensorToWrite.nf4(name, shape, dtype, data, BLOCK_SIZES[random.nextInt(BLOCK_SIZES.length)],
                    random.nextBoolean()));
        }
        return g;
    }

    @Test
    void generatedTensorSetsComeBackAsWritten() throws Exception {
        long seed = System.nanoTime();
        SplittableRandom random = new SplittableRandom(seed);
        for (int c = 0; c < 60; c++) {
            try (Arena arena = Arena.ofShared()) {
                Generated g = generate(random, arena);
                Map<String, String> metadata = new LinkedHashMap<>();
                metadata.put("model_name", "test-" + c);
                metadata.put("compute_dtype", "BF16");
                metadata.put("ключ", "значение ✓");
                Path file = dir.resolve("case" + c + ".qnat");
                QnatWriter.write(file, metadata, g.tensors, 1 + random.nextInt(3), QnatWriter.Progress.NONE);
                String label = "seed " + seed + " case " + c;
                try (QnatFile qnat = QnatFile.open(file)) {
                    assertEquals(2, qnat.version());
                    assertEquals(metadata, qnat.metadata(), label);
                    assertEquals(g.tensors.size(), qnat.tensors().size(), label);
                    qnat.verify();
                    for (int t = 0; t < g.tensors.size(); t++) {
                        TensorToWrite written = g.tensors.get(t);
                        QnatTensor read = qnat.tensors().get(t);
                        assertEquals(read, qnat.tensor(written.name()).orElseThrow(), label);
                        checkTensor(written, read, label + " tensor " + written.name());
                    }
                    assertFalse(qnat.tensor("no such tensor").isPresent());
                }
                assertGapsAreZero(new QnatLayout(metadata, g.tensors), Files.readAllBytes(file), label);
                try (var files = Files.list(dir)) {
                    assertEquals(0, files.filter(p -> p.getFileName().toString().startsWith(".")).count(),
                            "no temp file is left behind");
                }
                Files.delete(file);
            }
        }
    }

    /** The format's gaps between sections hold zeros, whatever memory the writer staged them in. */
    private static void assertGapsAreZero(QnatLayout layout, byte[] file, String label) {
        boolean[] inSection = new boolean[file.length];
        java.util.Arrays.fill(inSection, 0, (int) layout.headerLength, true);
        for (int t = 0; t < layout.sectionOffsets.length; t++) {
            for (int s = 0; s < QnatLayout.SECTIONS; s++) {
                long length = layout.sectionLengths[t][s];
                if (length > 0) {
                    long offset = layout.sectionOffsets[t][s];
                    java.util.Arrays.fill(inSection, (int) offset, (int) (offset + length), true);
                }
            }
        }
        assertEquals(layout.fileLength, file.length, label);
        for (int i = 0; i < file.length; i++) {
            if (!inSection[i] && file[i] != 0) {
                throw new AssertionError(label + ": gap byte " + i + " is " + file[i]);
            }
        }
    }

    private static void checkTensor(TensorToWrite written, QnatTensor read, String label) throws Exception {
        assertEquals(written.name(), read.name(), label);
        assertArrayEquals(written.shape(), read.shape(), label);
        assertEquals(written.dtype(), read.dtype(), label);
        assertEquals(written.encoding(), read.encoding(), label);
        long n = written.elementCount();
        if (written.encoding() == Encoding.RAW) {
            assertEquals(-1, written.data().mismatch(read.data()), label);
            return;
        }
        assertEquals(written.blockSize(), read.blockSize(), label);
        assertEquals(written.doubleQuant() ? ScaleStorage.DOUBLE_QUANT : ScaleStorage.ABSMAX_F32, read.scaleStorage(), label);
        // Expected values from the codec directly, with the scales the double quantization gives back.
        FloatType type = written.dtype().floatType().orElseThrow();
        long blocks = Nf4.blockCount(n, written.blockSize());
        float[] absmax = new float[(int) blocks];
        byte[] codes = new byte[(int) Nf4.packedSize(n)];
        Nf4.quantize(written.data(), type, written.blockSize(), MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax));
        assertEquals(-1, MemorySegment.ofArray(codes).mismatch(read.data()), label);
        if (written.doubleQuant()) {
            byte[] q = new byte[(int) blocks];
            float[] nested = new float[(int) DoubleQuantization.groupCount(blocks)];
            float offset = DoubleQuantization.quantize(MemorySegment.ofArray(absmax), blocks, MemorySegment.ofArray(q),
                    MemorySegment.ofArray(nested));
            assertEquals(offset, read.doubleQuantOffset(), label);
            DoubleQuantization.dequantize(MemorySegment.ofArray(q), MemorySegment.ofArray(nested), offset,
                    DoubleQuantization.table(), blocks, MemorySegment.ofArray(absmax));
        } else {
            assertEquals(-1, MemorySegment.ofArray(absmax).mismatch(read.scales()), label);
        }
        for (FloatType out : FloatType.values()) {
            byte[] expected = new byte[(int) n * out.byteSize()];
            Nf4.dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), written.blockSize(),
                    MemorySegment.ofArray(expected), out);
            byte[] actual = new byte[(int) n * out.byteSize()];
            read.dequantize(MemorySegment.ofArray(actual), out);
            assertArrayEquals(expected, actual, label + " as " + out);
        }
    }

    @Test
    void sectionsAreAlignedAndDoubleQuantCosts4Point127BitsPerWeight() throws Exception {
        int n = 64 * 256 * 64;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment data = arena.allocate(4L * n, 64);
            SplittableRandom random = new SplittableRandom(5);
            for (int i = 0; i < n; i++) {
                data.setAtIndex(F32, i, (float) random.nextGaussian());
            }
            Path file = dir.resolve("dq.qnat");
            QnatWriter.write(file, Map.of(), List.of(TensorToWrite.nf4("w", new long[] {1024, n / 1024}, DType.F32, data, 64, true),
                    TensorToWrite.nf4("plain", new long[] {n}, DType.F32, data, 64, false)));
            try (QnatFile qnat = QnatFile.open(file)) {
                QnatTensor dq = qnat.tensor("w").orElseThrow();
                long table = 4L * DoubleQuantization.TABLE_SIZE;
                double bits = 8.0 * (dq.storedBytes() - table) / n;
                assertEquals(4.127, bits, 0.0005, "codes, one byte per block, one float per 256 blocks");
                assertEquals(4.5, 8.0 * qnat.tensor("plain").orElseThrow().storedBytes() / n, 1e-9);
                assertEquals(0, dq.data().address() % 64);
                assertEquals(0, dq.scales().address() % 64);
                assertTrue(qnat.fileSize() % 64 == 0);
            }
        }
    }
}
