/**
 * QNAT files (src/spec/qnat-v2.md): {@link dev.qnat.format.QnatWriter} writes v2 all or nothing from
 * {@link dev.qnat.format.TensorToWrite} descriptions; {@link dev.qnat.format.QnatFile} maps a v2 or v1
 * file, validates all of its header, and gives zero-copy {@link dev.qnat.format.QnatTensor} views. A
 * malformed file is a {@link dev.qnat.format.FormatException} that names the field and its offset.
 */
package dev.qnat.format;
