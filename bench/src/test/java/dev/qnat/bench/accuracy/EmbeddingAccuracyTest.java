package dev.qnat.bench.accuracy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.ScaleRule;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The real-model check of issue 15 on a reduced sentence set: NF4 at qnat's defaults keeps
 * all-MiniLM-L6-v2's sentence embeddings close to F32's, and mse scales do no worse than absmax. The full
 * table is bench/accuracy.sh's.
 */
class EmbeddingAccuracyTest {
    private static final int SENTENCES = 40;
    private static final double MIN_MEAN_COSINE = 0.95;

    private static Map<String, EmbeddingAccuracy.Row> rows;

    @BeforeAll
    static void measure() throws Exception {
        List<String> sentences = EmbeddingAccuracy.sentences().subList(0, SENTENCES);
        List<Variant> variants = List.of(Variant.DEFAULT, Variant.DEFAULT.withScales(ScaleRule.MSE),
                new Variant(64, false, ScaleRule.ABSMAX), new Variant(64, false, ScaleRule.MSE));
        EmbeddingAccuracy.Report report = EmbeddingAccuracy.measure(sentences, variants, false, 1);
        rows = report.rows().stream().collect(Collectors.toMap(EmbeddingAccuracy.Row::label, Function.identity()));
    }

    @Test
    void theSentenceFileHoldsAtLeast200SentencesInPairs() throws Exception {
        List<String> sentences = EmbeddingAccuracy.sentences();
        assertTrue(sentences.size() >= 200, sentences.size() + " sentences");
        assertEquals(0, sentences.size() % 2, "sentences come in paraphrase pairs");
        assertEquals(sentences.size(), sentences.stream().distinct().count(), "no sentence twice");
    }

    @Test
    void handingOnnxRuntimeTheF32WeightsChangesNothing() {
        EmbeddingComparison control = rows.get("F32, weights replaced by themselves").comparison();
        assertTrue(control.minCosine() > 1 - 1e-6, "min cosine " + control.minCosine());
        assertEquals(1.0, control.sameNeighbour());
    }

    @Test
    void nf4AtTheDefaultsKeepsTheEmbeddingsClose() {
        EmbeddingComparison nf4 = rows.get(Variant.DEFAULT.label()).comparison();
        // Below 1: the NF4 weights did reach the model (a replacement ONNX Runtime ignored would give exactly 1).
        assertTrue(nf4.meanCosine() < 0.9999, "mean cosine " + nf4.meanCosine() + ": were the weights replaced?");
        assertTrue(nf4.meanCosine() >= MIN_MEAN_COSINE, "NF4 " + Variant.DEFAULT.label() + " mean cosine "
                + nf4.meanCosine() + ", under " + MIN_MEAN_COSINE);
    }

    @Test
    void mseScalesDoNoWorseThanAbsmax() {
        for (boolean doubleQuant : new boolean[] {true, false}) {
            Variant absmax = new Variant(64, doubleQuant, ScaleRule.ABSMAX);
            Variant mse = absmax.withScales(ScaleRule.MSE);
            double absmaxCosine = rows.get(absmax.label()).comparison().meanCosine();
            double mseCosine = rows.get(mse.label()).comparison().meanCosine();
            assertTrue(mseCosine >= absmaxCosine, mse.label() + " mean cosine " + mseCosine + ", under "
                    + absmax.label() + "'s " + absmaxCosine);
        }
    }
}
