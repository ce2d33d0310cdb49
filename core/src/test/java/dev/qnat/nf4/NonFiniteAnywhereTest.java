package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.qnat.nf4.TestData.Shape;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * {@link Nf4#quantize} on inputs of several parallel ranges: the destinations must keep every byte
 * wherever the NaN or infinity sits (first and last element, a block's edges, the middle, both sides of
 * a range boundary), on one thread and on four, at every vector width (tag "widths"); and a finite
 * input gives what the kernels write straight into place.
 */
@Tag("widths")
class NonFiniteAnywhereTest {
    /** Odd, so that the last block is partial and the last code byte half used; three ranges on four threads. */
    private static final int COUNT = 140_001;
    private static final int BLOCK_SIZE = 64;
    private static final byte SENTINEL = 0x5A;
    private static final float[] BAD = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};

    private static ExecutorService pool;

    @BeforeAll
    static void startPool() {
        pool = Executors.newFixedThreadPool(4);
    }

    @AfterAll
    static void stopPool() {
        pool.shutdownNow();
    }

    @ParameterizedTest
    @EnumSource(FloatType.class)
    void aBadElementAnywhereLeavesTheDestinationsUntouched(FloatType type) {
        long blocks = Nf4.blockCount(COUNT, BLOCK_SIZE);
        // First, last, a block's first and last, the middle, and both sides of a parallel range boundary.
        long[] positions = {0, COUNT - 1, 64 * 1000, 64 * 1000 - 1, COUNT / 2, (1 << 16) - 1, 1 << 16};
        try (Arena arena = Arena.ofShared()) {
            float[] values = TestData.values(Shape.NORMAL, COUNT, BLOCK_SIZE, new SplittableRandom(7));
            MemorySegment src = TestData.encode(values, type, arena);
            MemorySegment codes = arena.allocate(Nf4.packedSize(COUNT));
            MemorySegment absmax = arena.allocate(4 * blocks);
            MemorySegment untouchedCodes = arena.allocate(codes.byteSize()).fill(SENTINEL);
            MemorySegment untouchedAbsmax = arena.allocate(absmax.byteSize()).fill(SENTINEL);
            for (long position : positions) {
                for (float bad : BAD) {
                    MemorySegment input = arena.allocate(src.byteSize()).copyFrom(src);
                    write(input, type, position, bad);
                    for (boolean parallel : new boolean[] {false, true}) {
                        codes.fill(SENTINEL);
                        absmax.fill(SENTINEL);
                        String what = type + " " + bad + " at " + position + (parallel ? ", 4 threads" : "");
                        NonFiniteValueException e = assertThrows(NonFiniteValueException.class, () -> {
                            if (parallel) {
                                Nf4.quantizeParallel(input, type, BLOCK_SIZE, codes, absmax, pool);
                            } else {
                                Nf4.quantize(input, type, BLOCK_SIZE, codes, absmax);
                            }
                        }, what);
                        assertEquals(position, e.index(), what);
                        assertEquals(-1, codes.mismatch(untouchedCodes), what + ": codes were written");
                        assertEquals(-1, absmax.mismatch(untouchedAbsmax), what + ": absmax was written");
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(FloatType.class)
    void aFiniteInputGivesWhatTheKernelsWriteInPlace(FloatType type) {
        long blocks = Nf4.blockCount(COUNT, BLOCK_SIZE);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment src = TestData.encode(TestData.values(Shape.HEAVY_TAILED, COUNT, BLOCK_SIZE,
                    new SplittableRandom(11)), type, arena);
            MemorySegment expectedCodes = arena.allocate(Nf4.packedSize(COUNT));
            MemorySegment expectedAbsmax = arena.allocate(4 * blocks);
            Nf4.quantizeBlocks(src, type, BLOCK_SIZE, 0, blocks, expectedCodes, expectedAbsmax);
            for (boolean parallel : new boolean[] {false, true}) {
                MemorySegment codes = arena.allocate(expectedCodes.byteSize()).fill(SENTINEL);
                MemorySegment absmax = arena.allocate(expectedAbsmax.byteSize()).fill(SENTINEL);
                if (parallel) {
                    Nf4.quantizeParallel(src, type, BLOCK_SIZE, codes, absmax, pool);
                } else {
                    Nf4.quantize(src, type, BLOCK_SIZE, codes, absmax);
                }
                assertEquals(-1, codes.mismatch(expectedCodes), type + (parallel ? " parallel" : "") + " codes");
                assertEquals(-1, absmax.mismatch(expectedAbsmax), type + (parallel ? " parallel" : "") + " absmax");
            }
        }
    }

    private static void write(MemorySegment input, FloatType type, long index, float value) {
        if (type == FloatType.F32) {
            input.setAtIndex(TestData.FLOAT, index, value);
        } else {
            input.setAtIndex(TestData.SHORT, index, type.floatToHalfBits(value));
        }
    }
}
