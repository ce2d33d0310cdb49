package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Inputs read from a mapped file go through the staged kernels (a heap copy per chunk); their results
 * must be those of the same bytes on the heap, byte for byte, at every width (tag "widths").
 */
@Tag("widths")
class MappedInputKernelTest {
    @TempDir
    Path dir;

    private MemorySegment mapped(byte[] bytes, Arena arena) throws Exception {
        Path file = Files.createTempFile(dir, "input", ".bin");
        Files.write(file, bytes);
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            return channel.map(FileChannel.MapMode.READ_ONLY, 0, bytes.length, arena);
        }
    }

    @Test
    void mappedInputsGiveTheHeapResults() throws Exception {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        // Several staging chunks with a tail, at a small, the default and a large block size.
        int[][] cases = {{2, 70_001}, {64, 200_003}, {4096, 300_000}, {1 << 20, (1 << 20) + 5}};
        try (Arena arena = Arena.ofShared()) {
            for (int[] c : cases) {
                int blockSize = c[0];
                int count = c[1];
                for (FloatType type : FloatType.values()) {
                    String what = "seed " + seed + ", " + type + ", block " + blockSize + ", " + count + " elements";
                    byte[] input = new byte[count * type.byteSize()];
                    MemorySegment heap = MemorySegment.ofArray(input);
                    for (int i = 0; i < count; i++) {
                        type.write(heap, i, (float) random.nextGaussian());
                    }
                    MemorySegment file = mapped(input, arena);
                    assertTrue(file.isMapped());
                    byte[] codes = new byte[(int) Nf4.packedSize(count)];
                    float[] absmax = new float[(int) Nf4.blockCount(count, blockSize)];
                    byte[] fileCodes = codes.clone();
                    float[] fileAbsmax = absmax.clone();
                    Nf4.quantize(heap, type, blockSize, MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax));
                    Nf4.quantize(file, type, blockSize, MemorySegment.ofArray(fileCodes), MemorySegment.ofArray(fileAbsmax));
                    assertArrayEquals(codes, fileCodes, what);
                    assertArrayEquals(absmax, fileAbsmax, what);

                    MemorySegment mappedCodes = mapped(codes, arena);
                    byte[] absmaxBytes = MemorySegment.ofArray(absmax).toArray(ValueLayout.JAVA_BYTE);
                    MemorySegment mappedAbsmax = mapped(absmaxBytes, arena);
                    byte[] out = new byte[input.length];
                    byte[] fileOut = new byte[input.length];
                    Nf4.dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), blockSize,
                            MemorySegment.ofArray(out), type);
                    Nf4.dequantize(mappedCodes, mappedAbsmax, blockSize, MemorySegment.ofArray(fileOut), type);
                    assertArrayEquals(out, fileOut, what + ", dequantized");
                }
            }
        }
    }

    /**
     * Every kind of test value, as every type, through the staged kernels that mapped inputs get (F16 staged
     * as F32) and through the kernels that read memory directly: the same codes and scales, and the same
     * block terms and error figures but for the order their sums were added in; with MSE scales too.
     */
    @Test
    void stagedInputsMeasureAndSearchAsDirectOnes() throws Exception {
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        int blockSize = 64;
        int count = 100_003;
        try (Arena arena = Arena.ofShared()) {
            for (TestData.Shape shape : TestData.Shape.values()) {
                for (FloatType type : FloatType.values()) {
                    String what = "seed " + seed + ", " + shape + ", " + type;
                    MemorySegment direct = TestData.encode(TestData.values(shape, count, blockSize, random), type, arena);
                    MemorySegment file = mapped(direct.toArray(ValueLayout.JAVA_BYTE), arena);
                    long blocks = Nf4.blockCount(count, blockSize);
                    MemorySegment[] codes = {arena.allocate(Nf4.packedSize(count)), arena.allocate(Nf4.packedSize(count))};
                    MemorySegment[] absmax = {arena.allocate(4 * blocks), arena.allocate(4 * blocks)};
                    MemorySegment[] terms = {arena.allocate(12 * blocks), arena.allocate(12 * blocks)};
                    QuantizationError[] errors = {new QuantizationError(), new QuantizationError()};
                    MemorySegment[] inputs = {direct, file};
                    for (int k = 0; k < 2; k++) {
                        Nf4.quantizeBlocks(inputs[k], type, blockSize, 0, blocks, codes[k], absmax[k], errors[k], terms[k]);
                    }
                    assertEquals(-1, codes[0].mismatch(codes[1]), what);
                    assertEquals(-1, absmax[0].mismatch(absmax[1]), what);
                    // The terms' float sums are reduced across lanes in an order the JIT may change between calls.
                    for (long i = 0; i < 3 * blocks; i++) {
                        float a = terms[0].getAtIndex(TestData.FLOAT, i);
                        float b = terms[1].getAtIndex(TestData.FLOAT, i);
                        assertEquals(a, b, 1e-6f * Math.abs(a) + 1e-30f, what + ", block term " + i);
                    }
                    assertEquals(errors[0].count(), errors[1].count(), what);
                    assertEquals(errors[0].maxAbsError(), errors[1].maxAbsError(), what);
                    assertEquals(errors[0].sumSquaredError(), errors[1].sumSquaredError(),
                            1e-7 * errors[0].sumSquaredError(), what);
                    assertEquals(errors[0].sumSquaredSignal(), errors[1].sumSquaredSignal(),
                            1e-7 * errors[0].sumSquaredSignal(), what);
                    for (int k = 0; k < 2; k++) {
                        Nf4.quantize(inputs[k], type, blockSize, codes[k], absmax[k], ScaleRule.MSE);
                    }
                    assertEquals(-1, codes[0].mismatch(codes[1]), what + ", MSE");
                    assertEquals(-1, absmax[0].mismatch(absmax[1]), what + ", MSE");
                }
            }
        }
    }

    @Test
    void aNonFiniteValueInAMappedInputIsFoundAtItsIndex() throws Exception {
        int count = 100_000;
        float[] values = new float[count];
        values[70_000] = Float.NaN;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment file = mapped(MemorySegment.ofArray(values).toArray(ValueLayout.JAVA_BYTE), arena);
            byte[] codes = new byte[count / 2];
            NonFiniteValueException e = org.junit.jupiter.api.Assertions.assertThrows(NonFiniteValueException.class,
                    () -> Nf4.quantize(file, FloatType.F32, 64, MemorySegment.ofArray(codes),
                            MemorySegment.ofArray(new float[count / 64 + 1])));
            org.junit.jupiter.api.Assertions.assertEquals(70_000, e.index());
        }
    }
}
