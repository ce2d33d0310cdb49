/**
 * The codec's kernels, the scalar reference and the Panama Vector API ones, and the provider that chooses
 * between them. Internal: the module {@code dev.qnat.core} does not export this package; use
 * {@link dev.qnat.nf4.Nf4}.
 */
package dev.qnat.nf4.kernel;
