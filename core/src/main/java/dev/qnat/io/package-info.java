/**
 * File handling that keeps users' files safe: outputs written to a temp file and renamed into place
 * ({@link dev.qnat.io.AtomicMappedFile}), the policy on which outputs may be written
 * ({@link dev.qnat.io.OutputTarget}), snapshots that tell an input changed while read
 * ({@link dev.qnat.io.FileSnapshot}), CRC-32C of mapped memory, and pages mapped ahead of use.
 */
package dev.qnat.io;
