package dev.qnat.bench.accuracy;

import java.util.Arrays;

/**
 * How close one model's sentence embeddings are to the reference's: the cosine similarity of each
 * sentence's two embeddings (mean, 5th percentile, minimum), and the fraction of sentences whose nearest
 * neighbour among the other sentences is the same under both.
 */
public record EmbeddingComparison(double meanCosine, double p5Cosine, double minCosine, double sameNeighbour) {

    /** Compares unit-length embeddings, one row per sentence, the same sentences in the same order. */
    public static EmbeddingComparison of(float[][] reference, float[][] other) {
        if (reference.length != other.length || reference.length < 2) {
            throw new IllegalArgumentException("need the same two or more sentences, got " + reference.length + " and "
                    + other.length);
        }
        int n = reference.length;
        double[] cosines = new double[n];
        int same = 0;
        for (int i = 0; i < n; i++) {
            cosines[i] = dot(reference[i], other[i]);
            if (nearestNeighbour(reference, i) == nearestNeighbour(other, i)) {
                same++;
            }
        }
        double mean = Arrays.stream(cosines).sum() / n;
        Arrays.sort(cosines);
        return new EmbeddingComparison(mean, percentile(cosines, 0.05), cosines[0], (double) same / n);
    }

    /** The index of the sentence other than {@code i} whose embedding has the highest cosine with i's. */
    static int nearestNeighbour(float[][] embeddings, int i) {
        int best = -1;
        double bestCosine = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < embeddings.length; j++) {
            if (j != i) {
                double cosine = dot(embeddings[i], embeddings[j]);
                if (cosine > bestCosine) {
                    bestCosine = cosine;
                    best = j;
                }
            }
        }
        return best;
    }

    // Linear interpolation between the closest ranks, as numpy.percentile does by default.
    private static double percentile(double[] sorted, double fraction) {
        double position = fraction * (sorted.length - 1);
        int lower = (int) Math.floor(position);
        int upper = Math.min(sorted.length - 1, lower + 1);
        return sorted[lower] + (position - lower) * (sorted[upper] - sorted[lower]);
    }

    // The embeddings are unit length, so the dot product is the cosine.
    private static double dot(float[] a, float[] b) {
        double sum = 0;
        for (int d = 0; d < a.length; d++) {
            sum += (double) a[d] * b[d];
        }
        return sum;
    }
}
