package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.Nf4;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A failed write leaves the target as it was and no temp file behind. */
class QnatWriterFailureTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    private static MemorySegment ramp(Arena arena, int n) {
        MemorySegment data = arena.allocate(4L * n, 64);
        for (int i = 0; i < n; i++) {
            data.setAtIndex(F32, i, (i % 17 - 8) * 0.01f);
        }
        return data;
    }

    private List<String> dirListing() throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void nanInATensorNamesItAndKeepsThePreviousFile() throws Exception {
        Path target = dir.resolve("model.qnat");
        try (Arena arena = Arena.ofShared()) {
            MemorySegment good = ramp(arena, 5000);
            QnatWriter.write(target, Map.of("v", "1"), List.of(TensorToWrite.nf4("a", new long[] {5000}, DType.F32, good, 64, true)));
            byte[] before = Files.readAllBytes(target);

            MemorySegment bad = ramp(arena, 3_000_000);
            bad.setAtIndex(F32, 2_345_678, Float.NaN);
            NonFiniteTensorException e = assertThrows(NonFiniteTensorException.class, () -> QnatWriter.write(target,
                    Map.of("v", "2"), List.of(TensorToWrite.nf4("a", new long[] {5000}, DType.F32, good, 64, true),
                            TensorToWrite.nf4("layers.1.bad", new long[] {3000, 1000}, DType.F32, bad, 64, false)), 2,
                    QnatWriter.Progress.NONE));
            assertEquals("layers.1.bad", e.tensor());
            assertEquals(2_345_678, e.index());
            assertTrue(e.getMessage().contains("'layers.1.bad'") && e.getMessage().contains("element 2345678"), e.getMessage());
            assertArrayEquals(before, Files.readAllBytes(target), "the previous file is untouched");
            assertEquals(List.of("model.qnat"), dirListing(), "no temp file is left");
        }
    }

    @Test
    void nanInANewTargetLeavesNothing() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment bad = ramp(arena, 100);
            bad.setAtIndex(F32, 0, Float.POSITIVE_INFINITY);
            assertThrows(NonFiniteTensorException.class, () -> QnatWriter.write(dir.resolve("new.qnat"), Map.of(),
                    List.of(TensorToWrite.nf4("x", new long[] {100}, DType.F32, bad, 64, false))));
            assertEquals(List.of(), dirListing());
        }
    }

    @Test
    void aMissingDirectoryIsAnIoErrorAndCreatesNothing() {
        assertThrows(IOException.class, () -> QnatWriter.write(dir.resolve("no/such/dir/x.qnat"), Map.of(), List.of()));
        assertFalse(Files.exists(dir.resolve("no")));
    }

    @Test
    void partialsOfDeadWritersAreRemovedLockedOnesKept() throws Exception {
        Path target = dir.resolve("m.qnat");
        String mark = dev.qnat.io.AtomicMappedFile.PARTIAL_MARK;
        Path dead = dir.resolve(".m.qnat" + mark + "2147483646.0badc0de");
        // A writer in another PID namespace: its PID means nothing here, its lock proves it alive.
        Path live = dir.resolve(".m.qnat" + mark + "2147483645.0badc0de");
        Path otherTarget = dir.resolve(".n.qnat" + mark + "2147483646.0badc0de");
        for (Path p : List.of(dead, live, otherTarget)) {
            Files.write(p, new byte[10]);
        }
        Process holder = dev.qnat.io.LockHolder.start(live);
        try {
            QnatWriter.write(target, Map.of(), List.of());
        } finally {
            holder.getOutputStream().close();
            holder.waitFor();
        }
        assertFalse(Files.exists(dead), "a dead writer's partial is cleaned up");
        assertTrue(Files.exists(live), "a partial whose writer holds its lock is left alone");
        assertTrue(Files.exists(otherTarget), "other targets' partials are left alone");
        try (QnatFile qnat = QnatFile.open(target)) {
            assertEquals(0, qnat.tensors().size());
        }
        QnatWriter.write(target, Map.of(), List.of());
        assertFalse(Files.exists(live), "once its writer is gone, the partial is cleaned up");
    }

    @Test
    void progressCountsEveryInputByte() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            List<TensorToWrite> tensors = List.of(
                    TensorToWrite.nf4("a", new long[] {3_000_000}, DType.F32, ramp(arena, 3_000_000), 64, true),
                    TensorToWrite.raw("b", new long[] {10}, DType.F32, ramp(arena, 10)),
                    // Already encoded (as a bitsandbytes import writes it): its packed codes count.
                    TensorToWrite.nf4Encoded("c", new long[] {101}, DType.F32, 64, new TensorToWrite.Encoded(
                            arena.allocate(Nf4.packedSize(101)), false, arena.allocate(4 * 2), null, 0, null)));
            java.util.concurrent.atomic.LongAdder seen = new java.util.concurrent.atomic.LongAdder();
            QnatWriter.write(dir.resolve("p.qnat"), Map.of(), tensors, 3, seen::add);
            assertEquals(3_000_000 * 4 + 10 * 4 + Nf4.packedSize(101), QnatWriter.inputBytes(tensors));
            assertEquals(QnatWriter.inputBytes(tensors), seen.sum());
        }
    }
}
