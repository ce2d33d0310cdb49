package dev.qnat.bench.accuracy;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.WireFormat;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The parts of an ONNX model (a protobuf {@code ModelProto}, onnx/onnx.proto) that the benchmark needs: the
 * float32 initializers with their values, and which of them are the weight input of a MatMul node.
 * Only the fields read here are decoded; the rest are skipped.
 */
public final class OnnxModel {
    // Field numbers in onnx.proto.
    private static final int MODEL_GRAPH = 7;
    private static final int GRAPH_NODE = 1;
    private static final int GRAPH_INITIALIZER = 5;
    private static final int NODE_INPUT = 1;
    private static final int NODE_OP_TYPE = 4;
    private static final int TENSOR_DIMS = 1;
    private static final int TENSOR_DATA_TYPE = 2;
    private static final int TENSOR_FLOAT_DATA = 4;
    private static final int TENSOR_NAME = 8;
    private static final int TENSOR_RAW_DATA = 9;
    private static final int TENSOR_DATA_LOCATION = 14;
    private static final int DATA_TYPE_FLOAT = 1;
    private static final int DATA_LOCATION_EXTERNAL = 1;

    /**
     * A float32 initializer.
     *
     * @param values the elements in C order, little-endian, as ONNX stores them
     */
    public record Initializer(String name, long[] shape, byte[] values) {
        public long elementCount() {
            long count = 1;
            for (long d : shape) {
                count *= d;
            }
            return count;
        }
    }

    private final List<Initializer> floatInitializers;
    private final Set<String> matMulWeights;

    private OnnxModel(List<Initializer> floatInitializers, Set<String> matMulWeights) {
        this.floatInitializers = List.copyOf(floatInitializers);
        this.matMulWeights = Set.copyOf(matMulWeights);
    }

    /** Parses a serialized ONNX model; IOException if it is not one or keeps its weights in external files. */
    public static OnnxModel parse(byte[] model) throws IOException {
        CodedInputStream in = CodedInputStream.newInstance(model);
        in.setSizeLimit(Integer.MAX_VALUE);
        List<Initializer> initializers = new ArrayList<>();
        Set<String> matMulWeights = new HashSet<>();
        boolean graphSeen = false;
        for (int tag; (tag = in.readTag()) != 0; ) {
            if (WireFormat.getTagFieldNumber(tag) == MODEL_GRAPH) {
                int limit = in.pushLimit(in.readRawVarint32());
                readGraph(in, initializers, matMulWeights);
                in.popLimit(limit);
                graphSeen = true;
            } else {
                in.skipField(tag);
            }
        }
        if (!graphSeen) {
            throw new IOException("not an ONNX model: no graph");
        }
        return new OnnxModel(initializers, matMulWeights);
    }

    /** The float32 initializers, in the model's order. */
    public List<Initializer> floatInitializers() {
        return floatInitializers;
    }

    /** Whether {@code name} is the second input (B, shape [in, out]) of a MatMul node. */
    public boolean isMatMulWeight(String name) {
        return matMulWeights.contains(name);
    }

    private static void readGraph(CodedInputStream in, List<Initializer> initializers, Set<String> matMulWeights)
            throws IOException {
        for (int tag; (tag = in.readTag()) != 0; ) {
            int field = WireFormat.getTagFieldNumber(tag);
            if (field == GRAPH_INITIALIZER) {
                int limit = in.pushLimit(in.readRawVarint32());
                Initializer initializer = readTensor(in);
                if (initializer != null) {
                    initializers.add(initializer);
                }
                in.popLimit(limit);
            } else if (field == GRAPH_NODE) {
                int limit = in.pushLimit(in.readRawVarint32());
                readNode(in, matMulWeights);
                in.popLimit(limit);
            } else {
                in.skipField(tag);
            }
        }
    }

    private static void readNode(CodedInputStream in, Set<String> matMulWeights) throws IOException {
        List<String> inputs = new ArrayList<>();
        String opType = "";
        for (int tag; (tag = in.readTag()) != 0; ) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case NODE_INPUT -> inputs.add(in.readStringRequireUtf8());
                case NODE_OP_TYPE -> opType = in.readStringRequireUtf8();
                default -> in.skipField(tag);
            }
        }
        if (opType.equals("MatMul") && inputs.size() == 2) {
            matMulWeights.add(inputs.get(1));
        }
    }

    /** The tensor as an Initializer, or null if it is not float32. */
    private static Initializer readTensor(CodedInputStream in) throws IOException {
        List<Long> dims = new ArrayList<>();
        int dataType = 0;
        String name = "";
        byte[] raw = null;
        ByteBuffer floats = ByteBuffer.allocate(0);
        boolean external = false;
        for (int tag; (tag = in.readTag()) != 0; ) {
            switch (WireFormat.getTagFieldNumber(tag)) {
                case TENSOR_DIMS -> readInt64s(in, tag, dims);
                case TENSOR_DATA_TYPE -> dataType = in.readInt32();
                case TENSOR_NAME -> name = in.readStringRequireUtf8();
                case TENSOR_RAW_DATA -> raw = in.readByteArray();
                case TENSOR_FLOAT_DATA -> floats = appendFloats(in, tag, floats);
                case TENSOR_DATA_LOCATION -> external = in.readInt32() == DATA_LOCATION_EXTERNAL;
                default -> in.skipField(tag);
            }
        }
        if (dataType != DATA_TYPE_FLOAT) {
            return null;
        }
        if (external) {
            throw new IOException("initializer '" + name + "' keeps its data in an external file; give a self-contained model");
        }
        long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
        byte[] values = raw != null ? raw : Arrays.copyOf(floats.array(), floats.position());
        Initializer initializer = new Initializer(name, shape, values);
        if (values.length != initializer.elementCount() * Float.BYTES) {
            throw new IOException("initializer '" + name + "': shape " + Arrays.toString(shape) + " needs "
                    + initializer.elementCount() * Float.BYTES + " bytes, the model holds " + values.length);
        }
        return initializer;
    }

    private static void readInt64s(CodedInputStream in, int tag, List<Long> out) throws IOException {
        readRepeated(in, tag, field -> out.add(field.readInt64()));
    }

    /** One value of a repeated field read by {@link #readRepeated}. */
    @FunctionalInterface
    private interface ValueReader {
        void read(CodedInputStream in) throws IOException;
    }

    /** A repeated scalar field's values at {@code tag}: packed (length-delimited) or a single value. */
    private static void readRepeated(CodedInputStream in, int tag, ValueReader value) throws IOException {
        if (WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
            int limit = in.pushLimit(in.readRawVarint32());
            while (in.getBytesUntilLimit() > 0) {
                value.read(in);
            }
            in.popLimit(limit);
        } else {
            value.read(in);
        }
    }

    // float_data, packed or not, as little-endian bytes like raw_data.
    private static ByteBuffer appendFloats(CodedInputStream in, int tag, ByteBuffer floats) throws IOException {
        List<Float> read = new ArrayList<>();
        readRepeated(in, tag, field -> read.add(field.readFloat()));
        ByteBuffer grown = ByteBuffer.allocate(floats.position() + read.size() * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        grown.put(floats.flip());
        read.forEach(grown::putFloat);
        return grown;
    }
}
