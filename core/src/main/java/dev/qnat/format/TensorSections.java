package dev.qnat.format;

import java.lang.foreign.MemorySegment;

/**
 * Where a tensor's sections lie in its file's mapping.
 *
 * @param slices sections 0 to 3 as read-only slices of the mapping, null where unused
 * @param offsets each section's offset in the file
 * @param crcs each section's stored CRC-32C; null for v1 files, which have none
 * @param zeroPoints a v1 tensor's per-block zero points, or null
 */
record TensorSections(MemorySegment[] slices, long[] offsets, int[] crcs, MemorySegment zeroPoints) {}
