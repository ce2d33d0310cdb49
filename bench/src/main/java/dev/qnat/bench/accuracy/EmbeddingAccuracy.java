package dev.qnat.bench.accuracy;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.onnxruntime.OrtException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import dev.qnat.nf4.QuantizationError;
import dev.qnat.nf4.ScaleRule;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * NF4's effect on what a real model computes: all-MiniLM-L6-v2's sentence embeddings with its F32
 * weights, against the same model with its weight matrices through qnat's NF4 round trip
 * ({@link Nf4RoundTrip}) in several variants, and against the int8 model langchain4j ships. Prints a
 * Markdown table, or JSON with {@code --json}.
 *
 * <p>Usage: {@code EmbeddingAccuracy [--sentences N] [--threads N] [--json]} (all sentences, one thread).
 */
public final class EmbeddingAccuracy {
    static final String MODEL = "/all-minilm-l6-v2.onnx";
    static final String TOKENIZER = "/all-minilm-l6-v2-tokenizer.json";
    static final String INT8_MODEL = "/all-minilm-l6-v2-q.onnx";
    static final String SENTENCES = "/dev/qnat/bench/accuracy/sentences.txt";

    /** The NF4 variants of the full benchmark. */
    public static final List<Variant> VARIANTS = List.of(
            new Variant(64, true, ScaleRule.ABSMAX),
            new Variant(64, true, ScaleRule.MSE),
            new Variant(64, false, ScaleRule.ABSMAX),
            new Variant(64, false, ScaleRule.MSE),
            new Variant(32, true, ScaleRule.ABSMAX),
            new Variant(32, true, ScaleRule.MSE),
            new Variant(128, true, ScaleRule.ABSMAX),
            new Variant(128, true, ScaleRule.MSE));

    /**
     * One row of the table.
     *
     * @param bitsPerWeight stored bits per weight of the matrices; NaN where not measured here
     * @param relativeWeightRmse RMSE of the quantized weights over their RMS; NaN where not measured here
     * @param rmseVsAbsmax the weight RMSE over that of absmax scales at the same block size and double
     *     quantization; NaN where that variant was not measured
     */
    public record Row(String label, double bitsPerWeight, EmbeddingComparison comparison, double relativeWeightRmse,
                      double rmseVsAbsmax) {}

    /**
     * The measurements.
     *
     * @param paraphraseNeighbours with F32, the fraction of sentences whose nearest neighbour is their
     *     paraphrase (the other line of their pair in the sentence file): how meaningful the neighbours are
     */
    public record Report(int sentences, double paraphraseNeighbours, List<Row> rows) {}

    // One variant's figures, without its weights (the next variant's need the memory).
    private record Measured(QuantizationError error, double bitsPerWeight, EmbeddingComparison comparison) {}

    private EmbeddingAccuracy() {}

    public static void main(String[] args) {
        int sentenceCount = Integer.MAX_VALUE;
        int threads = 1;
        boolean json = false;
        try {
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--sentences" -> sentenceCount = positive(args, ++i);
                    case "--threads" -> threads = positive(args, ++i);
                    case "--json" -> json = true;
                    default -> throw new IllegalArgumentException("unknown option '" + args[i]
                            + "'; usage: EmbeddingAccuracy [--sentences N] [--threads N] [--json]");
                }
            }
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
        }
        try {
            List<String> sentences = sentences();
            sentences = sentences.subList(0, Math.min(sentenceCount, sentences.size()));
            Report report = measure(sentences, VARIANTS, true, threads);
            System.out.print(json ? json(report) : markdown(report));
        } catch (IOException | OrtException | RuntimeException e) {
            System.err.println("error: " + (e.getMessage() != null ? e.getMessage() : e.toString()));
            System.exit(1);
        }
    }

    private static int positive(String[] args, int i) {
        if (i >= args.length) {
            throw new IllegalArgumentException(args[i - 1] + " needs a number");
        }
        try {
            int value = Integer.parseInt(args[i]);
            if (value >= 1) {
                return value;
            }
        } catch (NumberFormatException e) {
            // falls through to the error below
        }
        throw new IllegalArgumentException(args[i - 1] + " needs a whole number of at least 1, got '" + args[i] + "'");
    }

    /** The benchmark's sentences, in the file's order (paraphrases next to each other). */
    public static List<String> sentences() throws IOException {
        String text = new String(resource(SENTENCES), StandardCharsets.UTF_8);
        return text.lines().map(String::strip).filter(line -> !line.isEmpty() && !line.startsWith("#")).toList();
    }

    /**
     * Embeds {@code sentences} with the F32 model, then with each variant and, if {@code int8}, with the
     * int8 model, and compares each with F32. The first row is a control: the F32 weights handed to ONNX
     * Runtime as replacements, the path every NF4 variant takes, which must change nothing.
     */
    public static Report measure(List<String> sentences, List<Variant> variants, boolean int8, int threads)
            throws IOException, OrtException {
        byte[] model = resource(MODEL);
        OnnxModel parsed = OnnxModel.parse(model);
        Map<String, long[]> shapes = new LinkedHashMap<>();
        Map<String, FloatBuffer> original = new LinkedHashMap<>();
        for (OnnxModel.Initializer initializer : parsed.floatInitializers()) {
            if (Nf4RoundTrip.quantizes(initializer)) {
                shapes.put(initializer.name(), initializer.shape());
                original.put(initializer.name(), directCopy(initializer.values()));
            }
        }
        List<Row> rows = new ArrayList<>();
        double paraphraseNeighbours;
        Path tempDir = Files.createTempDirectory("qnat-accuracy-");
        try (InputStream tokenizerJson = new ByteArrayInputStream(resource(TOKENIZER));
             HuggingFaceTokenizer tokenizer = HuggingFaceTokenizer.newInstance(tokenizerJson, Map.of())) {
            float[][] reference = embed(tokenizer, model, Map.of(), shapes, sentences, threads);
            paraphraseNeighbours = paraphraseNeighbours(reference);
            float[][] control = embed(tokenizer, model, original, shapes, sentences, threads);
            rows.add(new Row("F32, weights replaced by themselves", 32, EmbeddingComparison.of(reference, control), 0,
                    Double.NaN));
            Map<Variant, Measured> measured = new LinkedHashMap<>();
            for (Variant variant : variants) {
                Nf4RoundTrip.Result roundTrip = Nf4RoundTrip.run(parsed, variant, tempDir);
                float[][] embeddings = embed(tokenizer, model, roundTrip.weights(), shapes, sentences, threads);
                measured.put(variant, new Measured(roundTrip.error(), roundTrip.bitsPerWeight(),
                        EmbeddingComparison.of(reference, embeddings)));
            }
            measured.forEach((variant, m) -> {
                Measured absmax = measured.get(variant.withScales(ScaleRule.ABSMAX));
                double relativeRmse = Math.sqrt(m.error().sumSquaredError() / m.error().sumSquaredSignal());
                rows.add(new Row(variant.label(), m.bitsPerWeight(), m.comparison(), relativeRmse,
                        absmax == null ? Double.NaN : m.error().rmse() / absmax.error().rmse()));
            });
            if (int8) {
                float[][] embeddings = embed(tokenizer, resource(INT8_MODEL), Map.of(), Map.of(), sentences, threads);
                rows.add(new Row("int8 (langchain4j's all-minilm-l6-v2-q)", Double.NaN,
                        EmbeddingComparison.of(reference, embeddings), Double.NaN, Double.NaN));
            }
        } finally {
            deleteTree(tempDir);
        }
        return new Report(sentences.size(), paraphraseNeighbours, rows);
    }

    // Nf4RoundTrip deletes its files; this also takes what a failed write may have left.
    private static void deleteTree(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            for (Path file : files.toList()) {
                Files.deleteIfExists(file);
            }
        }
        Files.deleteIfExists(dir);
    }

    // Sentences 2k and 2k + 1 are a pair; an odd last sentence has none and counts as a miss.
    private static double paraphraseNeighbours(float[][] embeddings) {
        int paired = 0;
        for (int i = 0; i < embeddings.length; i++) {
            if (EmbeddingComparison.nearestNeighbour(embeddings, i) == (i ^ 1)) {
                paired++;
            }
        }
        return (double) paired / embeddings.length;
    }

    private static float[][] embed(HuggingFaceTokenizer tokenizer, byte[] model, Map<String, FloatBuffer> weights,
                                   Map<String, long[]> shapes, List<String> sentences, int threads) throws OrtException {
        try (SentenceEmbedder embedder = new SentenceEmbedder(tokenizer, model, weights, shapes, threads)) {
            return embedder.embed(sentences);
        }
    }

    private static FloatBuffer directCopy(byte[] littleEndian) {
        FloatBuffer source = ByteBuffer.wrap(littleEndian).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        FloatBuffer copy = ByteBuffer.allocateDirect(littleEndian.length).order(ByteOrder.nativeOrder()).asFloatBuffer();
        copy.put(source).flip();
        return copy;
    }

    static byte[] resource(String name) throws IOException {
        try (InputStream in = EmbeddingAccuracy.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IOException("resource " + name + " is not on the class path (it comes with the bench module's"
                        + " dependencies; run bench/accuracy.sh)");
            }
            return in.readAllBytes();
        }
    }

    /** The rows as a Markdown table. */
    public static String markdown(Report report) {
        StringBuilder out = new StringBuilder();
        out.append("all-MiniLM-L6-v2, ").append(report.sentences()).append(" sentences; cosine similarity to the F32")
                .append(" embeddings, and how often a sentence's nearest neighbour among the others stays the same.")
                .append(String.format(Locale.ROOT, " With F32, %.1f%% of the sentences have their paraphrase as nearest"
                        + " neighbour.%n%n", 100 * report.paraphraseNeighbours()));
        out.append("| weights | bits per weight | mean cosine | 5th percentile | minimum | same nearest neighbour |"
                + " weight RMSE / RMS | weight RMSE vs absmax |\n");
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Row row : report.rows()) {
            EmbeddingComparison c = row.comparison();
            out.append(String.format(Locale.ROOT, "| %s | %s | %.5f | %.5f | %.5f | %.1f%% | %s | %s |%n", row.label(),
                    Double.isNaN(row.bitsPerWeight()) ? "about 8" : String.format(Locale.ROOT, "%.3f", row.bitsPerWeight()),
                    c.meanCosine(), c.p5Cosine(), c.minCosine(), 100 * c.sameNeighbour(),
                    optional("%.4f", row.relativeWeightRmse()), optional("%.3fx", row.rmseVsAbsmax())));
        }
        return out.toString();
    }

    private static String optional(String format, double value) {
        return Double.isNaN(value) ? "" : String.format(Locale.ROOT, format, value);
    }

    /** The rows as JSON. */
    public static String json(Report report) {
        StringWriter out = new StringWriter();
        try (JsonGenerator json = new JsonFactory().createGenerator(out)) {
            json.useDefaultPrettyPrinter();
            json.writeStartObject();
            json.writeStringField("model", "all-MiniLM-L6-v2");
            json.writeNumberField("sentences", report.sentences());
            json.writeNumberField("paraphraseNeighboursF32", report.paraphraseNeighbours());
            json.writeArrayFieldStart("rows");
            for (Row row : report.rows()) {
                json.writeStartObject();
                json.writeStringField("weights", row.label());
                writeNumberOrNull(json, "bitsPerWeight", row.bitsPerWeight());
                json.writeNumberField("meanCosine", row.comparison().meanCosine());
                json.writeNumberField("p5Cosine", row.comparison().p5Cosine());
                json.writeNumberField("minCosine", row.comparison().minCosine());
                json.writeNumberField("sameNearestNeighbour", row.comparison().sameNeighbour());
                writeNumberOrNull(json, "weightRmseOverRms", row.relativeWeightRmse());
                writeNumberOrNull(json, "weightRmseVsAbsmax", row.rmseVsAbsmax());
                json.writeEndObject();
            }
            json.writeEndArray();
            json.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out + "\n";
    }

    private static void writeNumberOrNull(JsonGenerator json, String field, double value) throws IOException {
        if (Double.isNaN(value)) {
            json.writeNullField(field);
        } else {
            json.writeNumberField(field, value);
        }
    }
}
