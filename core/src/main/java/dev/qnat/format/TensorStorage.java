package dev.qnat.format;

/**
 * How a tensor is stored, as its table entry says: RAW, or NF4 at a block size with its scales' storage.
 *
 * @param blockSize the NF4 block size; 0 for RAW
 * @param dqOffset the double-quantization offset; 0 unless {@link ScaleStorage#DOUBLE_QUANT}
 */
record TensorStorage(Encoding encoding, ScaleStorage scales, int blockSize, float dqOffset) {
    boolean doubleQuant() {
        return scales == ScaleStorage.DOUBLE_QUANT;
    }
}
