package dev.qnat.bench.accuracy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class EmbeddingComparisonTest {
    private static float[] unit(double angleDegrees) {
        double radians = Math.toRadians(angleDegrees);
        return new float[] {(float) Math.cos(radians), (float) Math.sin(radians)};
    }

    @Test
    void identicalEmbeddingsAgreeFully() {
        float[][] e = {unit(0), unit(10), unit(90), unit(100)};
        EmbeddingComparison c = EmbeddingComparison.of(e, e);
        assertEquals(1.0, c.meanCosine(), 1e-7);
        assertEquals(1.0, c.minCosine(), 1e-7);
        assertEquals(1.0, c.sameNeighbour());
    }

    @Test
    void cosinesAndNeighboursOfRotatedEmbeddings() {
        // Neighbours in the reference: 0<->1, 2<->3. In the other, sentence 1 turns to 60 degrees, nearer to 2 (90)
        // than to 0; so 1's neighbour changes, and 2's stays 3 (at 100, 10 away against 30).
        float[][] reference = {unit(0), unit(10), unit(90), unit(100)};
        float[][] other = {unit(0), unit(60), unit(90), unit(100)};
        EmbeddingComparison c = EmbeddingComparison.of(reference, other);
        double moved = Math.cos(Math.toRadians(50));
        assertEquals((3 + moved) / 4, c.meanCosine(), 1e-6);
        assertEquals(moved, c.minCosine(), 1e-6);
        // numpy.percentile([moved, 1, 1, 1], 5): 0.15 of the way from the lowest to the next.
        assertEquals(moved + 0.15 * (1 - moved), c.p5Cosine(), 1e-6);
        assertEquals(0.75, c.sameNeighbour());
    }
}
