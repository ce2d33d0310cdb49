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

    /** An empty sum: no elements, every sum and the maximum 0. */
    public QuantizationError() {
    }

    /**
     * Adds the sums of {@code elements} more elements.
     *
     * @param elements how many elements the figures cover
     * @param squaredError their {@code sum d_i^2}
     * @param squaredSignal their {@code sum x_i^2}
     * @param absError their {@code max |d_i|}; the maximum becomes the larger of it and the one held
     */
    public void add(long elements, double squaredError, double squaredSignal, double absError) {
        count += elements;
        sumSquaredError += squaredError;
        sumSquaredSignal += squaredSignal;
        maxAbsError = Math.max(maxAbsError, absError);
    }

    /**
     * Adds another sum's elements, as {@link #add(long, double, double, double)} with its figures.
     *
     * @param other the sum whose elements are added; it is not changed, unless it is this one
     */
    public void add(QuantizationError other) {
        add(other.count, other.sumSquaredError, other.sumSquaredSignal, other.maxAbsError);
    }

    /**
     * Number of elements summed.
     *
     * @return the element count, 0 for none
     */
    public long count() {
        return count;
    }

    /**
     * Sum of the squared errors, {@code sum d_i^2}.
     *
     * @return the sum, in the square of the elements' unit; 0 for no elements
     */
    public double sumSquaredError() {
        return sumSquaredError;
    }

    /**
     * Sum of the squared originals, {@code sum x_i^2}: the signal power {@link #snrDb} compares against.
     *
     * @return the sum, in the square of the elements' unit; 0 for no elements
     */
    public double sumSquaredSignal() {
        return sumSquaredSignal;
    }

    /**
     * Largest absolute error, {@code max |d_i|}.
     *
     * @return the maximum, in the elements' unit; 0 for no elements
     */
    public double maxAbsError() {
        return maxAbsError;
    }

    /**
     * Root mean squared error; 0 for no elements.
     *
     * @return {@code sqrt(sum d_i^2 / count)}, in the elements' unit
     */
    public double rmse() {
        return count == 0 ? 0 : Math.sqrt(sumSquaredError / count);
    }

    /**
     * Signal-to-noise ratio in dB: signal power over error power; infinite for no error.
     *
     * @return {@code 10 log10(sum x_i^2 / sum d_i^2)}; positive infinity where {@code sum d_i^2} is 0
     */
    public double snrDb() {
        return sumSquaredError == 0 ? Double.POSITIVE_INFINITY : 10 * Math.log10(sumSquaredSignal / sumSquaredError);
    }

    @Override
    public String toString() {
        return count + " elements, sum d^2 " + sumSquaredError + ", sum x^2 " + sumSquaredSignal + ", max |d| "
                + maxAbsError;
    }
}
