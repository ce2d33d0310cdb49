/**
 * bitsandbytes NF4 checkpoints, as transformers saves and loads them: export from a floating checkpoint
 * ({@link dev.qnat.bnb.BitsandbytesExport}) and import into QNAT with identical codes and scales
 * ({@link dev.qnat.bnb.BitsandbytesImport}).
 */
package dev.qnat.bnb;
