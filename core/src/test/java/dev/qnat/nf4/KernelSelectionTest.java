package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.TestJvm;
import dev.qnat.nf4.kernel.Nf4KernelProvider;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The kernel choice in fresh JVMs: the vector kernels when they can run, else the scalar ones and one log record. */
class KernelSelectionTest {

    /** Run in the child JVMs: quantizes a little and prints the kernels' name. */
    public static final class Probe {
        public static void main(String[] args) {
            float[] x = {1f, -0.5f, 0.25f, 0f};
            byte[] codes = new byte[2];
            Nf4.quantize(x, 4, codes, new float[1]);
            System.out.println("kernels=" + Nf4KernelProvider.kernels().name() + " codes=" + codes[0] + "," + codes[1]);
        }
    }

    private record Run(String stdout, String stderr) {}

    private static Run runProbe(String... jvmOptions) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(List.of(jvmOptions));
        command.addAll(List.of("-cp", TestJvm.classPath(), Probe.class.getName()));
        Process process = new ProcessBuilder(command).start();
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "probe JVM did not finish");
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(process.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), () -> "probe failed: " + err);
        return new Run(out.strip(), err);
    }

    private static void assertScalarWithOneWarning(Run run, String reason) {
        // The same codes whatever the kernels: 1 -> 15, -0.5 -> 2, 0.25 -> 10, 0 -> 7.
        assertEquals("kernels=scalar codes=47,122", run.stdout());
        assertEquals(1, run.stderr().lines().filter(l -> l.contains("qnat: NF4 runs on the scalar kernels")).count(),
                run.stderr());
        assertTrue(run.stderr().contains(reason), run.stderr());
    }

    @Test
    void withoutTheVectorModuleTheScalarKernelsRun() throws Exception {
        assertScalarWithOneWarning(runProbe(), "without --add-modules jdk.incubator.vector");
    }

    @Test
    void withoutC2TheScalarKernelsRun() throws Exception {
        assertScalarWithOneWarning(runProbe("--add-modules", "jdk.incubator.vector", "-XX:TieredStopAtLevel=1"),
                "C2 is off");
    }

    @Test
    void aBadWidthFallsBackInsteadOfFailing() throws Exception {
        assertScalarWithOneWarning(runProbe("--add-modules", "jdk.incubator.vector", "-Dqnat.vector.bits=96"),
                "qnat.vector.bits=96 is not 128, 256, 512 or scalar");
    }

    @Test
    void aSmallWorkloadQuantizesOnTheScalarKernelsWithTheSameBytes() {
        float[] x = TestData.values(TestData.Shape.HEAVY_TAILED, 100_001, 64, new java.util.SplittableRandom(3));
        byte[] vectorCodes = new byte[50_001];
        float[] vectorAbsmax = new float[1563];
        byte[] smallCodes = vectorCodes.clone();
        float[] smallAbsmax = vectorAbsmax.clone();
        try {
            Nf4.expectWork(1_000_000_000L, 1);
            assertEquals(Nf4KernelProvider.kernels().name(), Nf4.kernelName());
            Nf4.quantize(x, 64, vectorCodes, vectorAbsmax);
            Nf4.expectWork(x.length, 1);
            boolean vectorChosen = !Nf4KernelProvider.kernels().name().equals("scalar");
            assertEquals("scalar", Nf4.kernelName(), vectorChosen ? "small work goes to the scalar kernels" : "");
            Nf4.quantize(x, 64, smallCodes, smallAbsmax);
        } finally {
            Nf4.expectWork(Long.MAX_VALUE, 1);
        }
        assertArrayEquals(vectorCodes, smallCodes);
        assertArrayEquals(vectorAbsmax, smallAbsmax);
    }

    @Test
    void aSmallWorkloadDequantizesToTheSameValues() {
        float[] x = TestData.values(TestData.Shape.HEAVY_TAILED, 100_001, 64, new java.util.SplittableRandom(4));
        byte[] codes = new byte[50_001];
        float[] absmax = new float[1563];
        Nf4.quantize(x, 64, codes, absmax);
        float[] vectorValues = new float[x.length];
        short[] vectorHalves = new short[x.length];
        float[] smallValues = new float[x.length];
        short[] smallHalves = new short[x.length];
        try {
            Nf4.expectWork(1_000_000_000L, 1);
            Nf4.dequantize(codes, absmax, 64, vectorValues);
            Nf4.dequantize(codes, absmax, 64, vectorHalves, FloatType.BF16);
            Nf4.expectWork(x.length, 1);
            Nf4.dequantize(codes, absmax, 64, smallValues);
            Nf4.dequantize(codes, absmax, 64, smallHalves, FloatType.BF16);
        } finally {
            Nf4.expectWork(Long.MAX_VALUE, 1);
        }
        assertArrayEquals(vectorValues, smallValues);
        assertArrayEquals(vectorHalves, smallHalves);
    }

    @Test
    void smallWorkIsCountedPerThread() {
        try {
            Nf4.expectWork(500_000_000L, 1);
            assertEquals(Nf4KernelProvider.kernels().name(), Nf4.kernelName(), "500 M elements on one thread");
            Nf4.expectWork(500_000_000L, 2);
            assertEquals("scalar", Nf4.kernelName(), "250 M elements on each of two threads");
            Nf4.expectWork(500_000_000L, 0);
            assertEquals(Nf4KernelProvider.kernels().name(), Nf4.kernelName(), "no threads count as one");
        } finally {
            Nf4.expectWork(Long.MAX_VALUE, 1);
        }
    }

    @Test
    void aForcedWidthIsUsed() throws Exception {
        Run run = runProbe("--add-modules", "jdk.incubator.vector", "-Dqnat.vector.bits=256");
        assertEquals("kernels=panama-256 codes=47,122", run.stdout());
    }
}
