package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.FloatType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Many threads dequantizing from one open file while another closes it: clean exceptions, no crash. */
class ConcurrentCloseTest {
    @TempDir
    Path dir;

    @Test
    void closingUnderReadersGivesThemIllegalStateException() throws Exception {
        int n = 1 << 20;
        Path file = dir.resolve("m.qnat");
        try (Arena arena = Arena.ofShared()) {
            MemorySegment data = arena.allocate(4L * n);
            for (int i = 0; i < n; i++) {
                data.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (i % 97) * 0.001f);
            }
            QnatWriter.write(file, Map.of(), List.of(TensorToWrite.nf4("w", new long[] {n}, DType.F32, data, 64, true)));
        }
        for (int round = 0; round < 5; round++) {
            QnatFile qnat = QnatFile.open(file);
            QnatTensor tensor = qnat.tensor("w").orElseThrow();
            ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
            CountDownLatch running = new CountDownLatch(8);
            CountDownLatch done = new CountDownLatch(8);
            for (int t = 0; t < 8; t++) {
                Thread.ofPlatform().start(() -> {
                    float[] out = new float[n];
                    running.countDown();
                    try {
                        while (true) {
                            tensor.dequantize(MemorySegment.ofArray(out), FloatType.F32);
                        }
                    } catch (Throwable e) {
                        failures.add(e);
                    } finally {
                        done.countDown();
                    }
                });
            }
            running.await();
            Thread.sleep(20 + 10 * round);
            qnat.close();
            assertTrue(done.await(30, TimeUnit.SECONDS), "readers stopped");
            assertEquals(8, failures.size());
            for (Throwable e : failures) {
                assertTrue(e instanceof IllegalStateException, "a reader saw " + e);
            }
        }
    }
}
