package dev.qnat.nf4;

/**
 * Reconstruction error of quantized values against their originals, summed: for elements {@code x_i}
 * and their reconstructions {@code y_i} (floats: {@code level(code) * absmax} rounded to float, as
 * dequantize writes them in F32), with {@code d_i = (double) x_i - (double) y_i}, it holds the count,
 * {@code sum d_i^2}, {@code sum x_i^2} and {@code max |d_i|}. The vector kernels accumulate in float
 * lanes over at most a block or eight vectors, then in double, so their sums agree with a plain
 * double-precision loop to about 1e-7 relative. Not thread-safe: one per worker, then {@link #add}ed.
 */
public final class QuantizationError {
    private long count;
    private double sumSquaredError;
    private double sumSquaredSignal;
    private double maxAbsError;

    /** Adds the sums of {@code elements} more elements. */
    public void add(long elements, double squaredError, double squaredSignal, double absError) {
        count += elements;
        sumSquaredError += squaredError;
        sumSquaredSignal += squaredSignal;
        maxAbsError = Math.max(maxAbsError, absError);
    }

    public void add(QuantizationError other) {
        add(other.count, other.sumSquaredError, other.sumSquaredSignal, other.maxAbsError);
    }

    public long count() {
        return count;
    }

    public double sumSquaredError() {
        return sumSquaredError;
    }

    public double sumSquaredSignal() {
        return sumSquaredSignal;
    }

    public double maxAbsError() {
        return maxAbsError;
    }

    /** Root mean squared error; 0 for no elements. */
    public double rmse() {
        return count == 0 ? 0 : Math.sqrt(sumSquaredError / count);
    }

    /** Signal-to-noise ratio in dB: signal power over error power; infinite for no error. */
    public double snrDb() {
        return sumSquaredError == 0 ? Double.POSITIVE_INFINITY : 10 * Math.log10(sumSquaredSignal / sumSquaredError);
    }

    @Override
    public String toString() {
        return count + " elements, sum d^2 " + sumSquaredError + ", sum x^2 " + sumSquaredSignal + ", max |d| "
                + maxAbsError;
    }
}
