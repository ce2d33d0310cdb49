package dev.qnat.format;

/** How a tensor's elements are stored. */
public enum Encoding {
    /** As they came, in the tensor's own dtype (norms, biases, embeddings, integer tensors). */
    RAW,
    /** NF4 codes with per-block scales. */
    NF4
}
