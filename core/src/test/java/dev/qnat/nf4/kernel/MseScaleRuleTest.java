package dev.qnat.nf4.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.Nf4Codebook;
import org.junit.jupiter.api.Test;

/** The facts about MseScaleRule's constants that the vector kernel's shortcut (candidateBounds) rests on. */
class MseScaleRuleTest {
    @Test
    void stepsDecreaseAndOneOfThemKeepsTheAbsmaxCodes() {
        for (int k = 1; k < MseScaleRule.CANDIDATES; k++) {
            assertTrue(MseScaleRule.STEPS[k] < MseScaleRule.STEPS[k - 1], "step " + k);
        }
        assertEquals(1, java.util.stream.IntStream.range(0, MseScaleRule.CANDIDATES)
                .filter(k -> MseScaleRule.STEPS[k] == 1f).count());
    }

    /**
     * Over all candidates an element's {@code u * step} moves by a factor of at most STEPS[0] / STEPS[last]
     * (and a little rounding), less than any two neighbouring thresholds of one sign are apart: it crosses
     * at most one threshold.
     */
    @Test
    void noValueCrossesTwoThresholdsOverAllCandidates() {
        double spread = (double) MseScaleRule.STEPS[0] / MseScaleRule.STEPS[MseScaleRule.CANDIDATES - 1] * (1 + 1e-6);
        float[] t = Nf4Codebook.midpoints();
        for (int i = 0; i + 1 < t.length; i++) {
            if (Math.signum(t[i]) == Math.signum(t[i + 1])) {
                double ratio = Math.max(t[i] / t[i + 1], t[i + 1] / t[i]);
                assertTrue(ratio > spread, "thresholds " + i + " and " + (i + 1) + " are " + ratio + " apart, the steps "
                        + spread);
            }
        }
    }
}
