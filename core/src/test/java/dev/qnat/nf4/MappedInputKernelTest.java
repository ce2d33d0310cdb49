package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
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
