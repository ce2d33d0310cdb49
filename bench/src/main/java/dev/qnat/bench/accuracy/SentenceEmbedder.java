package dev.qnat.bench.accuracy;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Sentence embeddings from an all-MiniLM-L6-v2 ONNX model, as sentence-transformers computes them: the
 * last hidden state averaged over the tokens the attention mask keeps, then scaled to unit length.
 */
public final class SentenceEmbedder implements AutoCloseable {
    private static final int BATCH = 16;

    private final HuggingFaceTokenizer tokenizer;
    private final OrtEnvironment environment;
    private final List<OnnxTensor> replacements = new ArrayList<>();
    private final OrtSession session;

    /**
     * @param model the serialized ONNX model
     * @param weights initializers to use instead of the model's own, by name (the buffers must stay
     *     valid until this is closed)
     * @param threads ONNX Runtime's intra-op threads
     */
    public SentenceEmbedder(HuggingFaceTokenizer tokenizer, byte[] model, Map<String, FloatBuffer> weights,
                            Map<String, long[]> shapes, int threads) throws OrtException {
        this.tokenizer = tokenizer;
        this.environment = OrtEnvironment.getEnvironment();
        try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
            options.setIntraOpNumThreads(threads);
            options.setInterOpNumThreads(1);
            for (Map.Entry<String, FloatBuffer> weight : weights.entrySet()) {
                OnnxTensor tensor = OnnxTensor.createTensor(environment, weight.getValue(), shapes.get(weight.getKey()));
                replacements.add(tensor);
                // Used instead of the model's initializer of that name (OrtApi::AddInitializer).
                options.addInitializer(weight.getKey(), tensor);
            }
            session = environment.createSession(model, options);
        } catch (OrtException | RuntimeException e) {
            replacements.forEach(OnnxTensor::close);
            throw e;
        }
    }

    /** One unit-length embedding per sentence. */
    public float[][] embed(List<String> sentences) throws OrtException {
        float[][] embeddings = new float[sentences.size()][];
        for (int start = 0; start < sentences.size(); start += BATCH) {
            List<String> batch = sentences.subList(start, Math.min(sentences.size(), start + BATCH));
            float[][] batchEmbeddings = embedBatch(batch);
            System.arraycopy(batchEmbeddings, 0, embeddings, start, batch.size());
        }
        return embeddings;
    }

    private float[][] embedBatch(List<String> sentences) throws OrtException {
        Encoding[] encodings = new Encoding[sentences.size()];
        int length = 0;
        for (int s = 0; s < encodings.length; s++) {
            encodings[s] = tokenizer.encode(sentences.get(s));
            length = Math.max(length, encodings[s].getIds().length);
        }
        // Padded on the right to the longest sentence; the mask keeps the padding out of the mean.
        long[][] ids = new long[encodings.length][length];
        long[][] mask = new long[encodings.length][length];
        long[][] types = new long[encodings.length][length];
        for (int s = 0; s < encodings.length; s++) {
            long[] sentenceIds = encodings[s].getIds();
            System.arraycopy(sentenceIds, 0, ids[s], 0, sentenceIds.length);
            System.arraycopy(encodings[s].getAttentionMask(), 0, mask[s], 0, sentenceIds.length);
            System.arraycopy(encodings[s].getTypeIds(), 0, types[s], 0, sentenceIds.length);
        }
        try (OnnxTensor idsTensor = OnnxTensor.createTensor(environment, ids);
             OnnxTensor maskTensor = OnnxTensor.createTensor(environment, mask);
             OnnxTensor typesTensor = OnnxTensor.createTensor(environment, types);
             OrtSession.Result result = session.run(Map.of("input_ids", idsTensor, "attention_mask", maskTensor,
                     "token_type_ids", typesTensor))) {
            float[][][] hidden = (float[][][]) result.get("last_hidden_state")
                    .orElseThrow(() -> new IllegalStateException("the model has no output 'last_hidden_state'"))
                    .getValue();
            float[][] embeddings = new float[encodings.length][];
            for (int s = 0; s < encodings.length; s++) {
                embeddings[s] = meanPooledUnit(hidden[s], mask[s]);
            }
            return embeddings;
        }
    }

    private static float[] meanPooledUnit(float[][] tokens, long[] mask) {
        int width = tokens[0].length;
        double[] sum = new double[width];
        long kept = 0;
        for (int t = 0; t < tokens.length; t++) {
            if (mask[t] != 0) {
                kept++;
                for (int d = 0; d < width; d++) {
                    sum[d] += tokens[t][d];
                }
            }
        }
        double norm = 0;
        for (int d = 0; d < width; d++) {
            sum[d] /= kept;
            norm += sum[d] * sum[d];
        }
        norm = Math.sqrt(norm);
        float[] unit = new float[width];
        for (int d = 0; d < width; d++) {
            unit[d] = (float) (sum[d] / norm);
        }
        return unit;
    }

    @Override
    public void close() throws OrtException {
        try {
            session.close();
        } finally {
            replacements.forEach(OnnxTensor::close);
        }
    }
}
