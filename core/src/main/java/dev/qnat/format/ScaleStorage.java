package dev.qnat.format;

/** How an NF4 tensor keeps its per-block absmax values. */
public enum ScaleStorage {
    /** None: a RAW tensor. */
    NONE,
    /** One float32 per block. */
    ABSMAX_F32,
    /** QLoRA's double quantization: a byte per block, a float32 per 256 blocks, an offset and a table. */
    DOUBLE_QUANT
}
