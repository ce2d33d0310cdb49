package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.FloatMatrix;
import dev.qnat.nf4.FloatType;
import dev.qnat.nf4.MatrixReference;
import dev.qnat.nf4.Nf4Matrix;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ForkJoinPool;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** QnatTensor.matVec/matMul on a mapped file: NF4 (DQ or not) and RAW F32/F16/BF16, and the tensors it refuses. */
class QnatTensorMatrixTest {
    @TempDir
    Path dir;

    private static float[] gaussian(SplittableRandom random, int n) {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }

    private static MemorySegment as(float[] values, FloatType type) {
        MemorySegment segment = MemorySegment.ofArray(new byte[values.length * type.byteSize()]);
        for (int i = 0; i < values.length; i++) {
            type.write(segment, i, values[i]);
        }
        return segment;
    }

    @Test
    void twoDimensionalTensorsMultiplyFromTheMappedFile() throws Exception {
        SplittableRandom random = new SplittableRandom(14);
        int[][] shapes = {{64, 128}, {7, 33}, {1, 300}, {300, 1}, {40, 520}};
        List<TensorToWrite> tensors = new ArrayList<>();
        for (int[] s : shapes) {
            long[] shape = {s[0], s[1]};
            float[] w = gaussian(random, s[0] * s[1]);
            tensors.add(TensorToWrite.nf4("nf4.dq." + s[0] + "x" + s[1], shape, DType.F32, MemorySegment.ofArray(w), 64, true));
            tensors.add(TensorToWrite.nf4("nf4." + s[0] + "x" + s[1], shape, DType.F32, MemorySegment.ofArray(w), 30, false));
            for (FloatType type : FloatType.values()) {
                tensors.add(TensorToWrite.raw(type + "." + s[0] + "x" + s[1], shape, DType.of(type), as(w, type)));
            }
        }
        Path file = dir.resolve("m.qnat");
        QnatWriter.write(file, Map.of(), tensors);
        try (QnatFile qnat = QnatFile.open(file)) {
            for (TensorToWrite written : tensors) {
                QnatTensor tensor = qnat.tensor(written.name()).orElseThrow();
                assertTrue(tensor.data().isMapped());
                int rows = (int) tensor.shape()[0];
                int cols = (int) tensor.shape()[1];
                assertEquals(tensor.encoding() == Encoding.NF4 ? Nf4Matrix.class : FloatMatrix.class, tensor.matrix().getClass());
                float[] w = tensor.toFloats();
                for (int batch : new int[] {1, 5}) {
                    float[] x = gaussian(random, batch * cols);
                    float[] y = new float[batch * rows];
                    tensor.matMul(x, batch, y);
                    MatrixReference.assertWithinBound(tensor.toString(), w, rows, cols, x, batch, y);
                    float[] parallel = new float[y.length];
                    tensor.matMul(x, batch, parallel, ForkJoinPool.commonPool());
                    assertArrayEquals(y, parallel, tensor + " on an executor");
                    if (batch == 1) {
                        float[] single = new float[rows];
                        tensor.matVec(x, single);
                        assertArrayEquals(y, single, tensor + " matVec");
                    }
                }
            }
        }
    }

    @Test
    void tensorsThatAreNotMatricesSayWhy() throws Exception {
        float[] w = new float[24];
        Path file = dir.resolve("n.qnat");
        QnatWriter.write(file, Map.of(), List.of(
                TensorToWrite.nf4("flat", new long[] {24}, DType.F32, MemorySegment.ofArray(w), 8, false),
                TensorToWrite.nf4("cube", new long[] {2, 3, 4}, DType.F32, MemorySegment.ofArray(w), 8, false),
                TensorToWrite.raw("ints", new long[] {4, 6}, DType.I32, MemorySegment.ofArray(new int[24])),
                TensorToWrite.raw("empty", new long[] {0, 6}, DType.F32, MemorySegment.ofArray(new float[0]))));
        try (QnatFile qnat = QnatFile.open(file)) {
            assertRefused(qnat, "flat", "is 1-D");
            assertRefused(qnat, "cube", "is 3-D");
            assertRefused(qnat, "ints", "is RAW I32");
            assertRefused(qnat, "empty", "does not fit a matrix");
            QnatTensor flat = qnat.tensor("flat").orElseThrow();
            float[] y = {1f, 2f};
            assertThrows(IllegalStateException.class, () -> flat.matVec(new float[24], y));
            assertArrayEquals(new float[] {1f, 2f}, y);
        }
    }

    @Test
    void v1TensorsWithZeroPointsAreRefused() throws Exception {
        int count = 64;
        byte[] codes = new byte[count / 2];
        float[] scales = {1f, 1f};
        SeedV1Writer.Tensor withZeroPoints = new SeedV1Writer.Tensor("zp", new long[] {4, 16}, 32, codes, scales,
                new float[] {0.5f, -0.5f}, null, null);
        SeedV1Writer.Tensor plain = new SeedV1Writer.Tensor("plain", new long[] {4, 16}, 32, codes.clone(), scales.clone(),
                null, null, null);
        Path file = dir.resolve("v1.qnat");
        Files.write(file, SeedV1Writer.write(List.of(withZeroPoints, plain), "m", "t", 0));
        try (QnatFile qnat = QnatFile.open(file)) {
            assertRefused(qnat, "zp", "zero points");
            float[] y = new float[4];
            qnat.tensor("plain").orElseThrow().matVec(new float[16], y);
            assertArrayEquals(new float[4], y);
        }
    }

    /** A file truncated under its mapping: an InternalError from the staged copy, not a SIGBUS crash. */
    @Test
    void aTruncatedMappingIsAnErrorNotACrash() throws Exception {
        int rows = 512;
        int cols = 4096;
        float[] w = gaussian(new SplittableRandom(3), rows * cols);
        Path file = dir.resolve("t.qnat");
        QnatWriter.write(file, Map.of(), List.of(
                TensorToWrite.nf4("w", new long[] {rows, cols}, DType.F32, MemorySegment.ofArray(w), 64, true),
                TensorToWrite.raw("f", new long[] {rows, cols}, DType.F32, MemorySegment.ofArray(w))));
        try (QnatFile qnat = QnatFile.open(file, false)) {
            QnatTensor nf4 = qnat.tensor("w").orElseThrow();
            QnatTensor raw = qnat.tensor("f").orElseThrow();
            nf4.matrix();
            raw.matrix();
            try (RandomAccessFile truncate = new RandomAccessFile(file.toFile(), "rw")) {
                truncate.setLength(4096);
            }
            float[] x = new float[cols];
            Arrays.fill(x, 1f);
            assertThrows(InternalError.class, () -> raw.matVec(x, new float[rows]));
            assertThrows(InternalError.class, () -> nf4.matMul(new float[3 * cols], 3, new float[3 * rows]));
        }
    }

    private static void assertRefused(QnatFile qnat, String name, String reason) throws FormatException {
        QnatTensor tensor = qnat.tensor(name).orElseThrow();
        IllegalStateException e = assertThrows(IllegalStateException.class, tensor::matrix);
        assertTrue(e.getMessage().contains("'" + name + "'") && e.getMessage().contains(reason), e.getMessage());
        assertEquals(e.getClass(), assertThrows(IllegalStateException.class, () -> tensor.matMul(new float[1], 1, new float[1]))
                .getClass());
    }
}
