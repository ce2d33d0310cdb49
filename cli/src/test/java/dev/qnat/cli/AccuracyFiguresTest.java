package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.convert.Quantizer;
import dev.qnat.format.Encoding;
import dev.qnat.format.QnatFile;
import dev.qnat.format.QnatTensor;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.nf4.ScaleRule;
import dev.qnat.safetensors.Checkpoint;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * The accuracy figures {@code qnat quantize} measures while quantizing are those {@code qnat compare}
 * computes from the written file, tensor by tensor, to 1e-6 relative: with and without double
 * quantization (whose stored absmax the figures must account for), absmax and MSE scales, on one and two threads, with
 * tensors that span several tasks.
 */
class AccuracyFiguresTest {
    @TempDir
    Path dir;

    private static void assertClose(double expected, double actual, String what) {
        assertTrue(Math.abs(expected - actual) <= 1e-6 * Math.abs(expected),
                what + ": compare says " + expected + ", quantize " + actual);
    }

    @ParameterizedTest
    @EnumSource(ScaleRule.class)
    void quantizeMeasuresWhatCompareReads(ScaleRule rule) throws Exception {
        Path model = dir.resolve("model.safetensors");
        DemoCheckpoint.write(model, 1, 256, 8192); // lm_head and embeddings of 2 Mi elements: several tasks
        for (boolean doubleQuant : new boolean[] {true, false}) {
            for (int threads : new int[] {1, 2}) {
                for (int blockSize : new int[] {64, 256}) {
                    Path out = dir.resolve("m-" + rule + doubleQuant + threads + blockSize + ".qnat");
                    Map<String, QuantizationError> measured;
                    try (Checkpoint checkpoint = Checkpoint.open(model)) {
                        measured = Quantizer.quantize(checkpoint, out, Quantizer.Options.defaults()
                                .withDoubleQuant(doubleQuant).withThreads(threads).withBlockSize(blockSize)
                                .withScaleRule(rule).withMeasure(true)).errors();
                    }
                    int nf4 = 0;
                    try (Checkpoint checkpoint = Checkpoint.open(model); QnatFile qnat = QnatFile.open(out);
                         Arena arena = Arena.ofShared()) {
                        for (QnatTensor q : qnat.tensors()) {
                            if (q.encoding() != Encoding.NF4) {
                                continue;
                            }
                            nf4++;
                            String what = q.name() + " (" + rule + " scales, double quantization " + doubleQuant + ", " + threads
                                    + " threads, block " + blockSize + ")";
                            Comparison.Stats compared = Comparison.compare(q.name(),
                                    Comparison.of(checkpoint.tensor(q.name()).orElseThrow()), Comparison.of(q, arena));
                            QuantizationError figures = measured.get(q.name());
                            assertEquals(compared.count(), figures.count(), what);
                            assertClose(compared.sumSquaredError(), figures.sumSquaredError(), what + " sum d^2");
                            assertClose(compared.sumSquaredSignal(), figures.sumSquaredSignal(), what + " sum x^2");
                            assertClose(compared.maxAbsError(), figures.maxAbsError(), what + " max |d|");
                        }
                    }
                    assertEquals(nf4, measured.size());
                    assertTrue(nf4 > 0);
                }
            }
        }
    }
}
