package dev.qnat.bnb;

import dev.qnat.format.DType;
import java.util.Arrays;

/**
 * The names and values of bitsandbytes' 4-bit state in a safetensors state dict, as transformers saves
 * and loads it (REFERENCE: bitsandbytes 4-bit weights in a safetensors state dict).
 */
public final class BitsandbytesNf4 {
    /** Ends the name of the tensor holding a quantized weight's quant_state JSON. */
    public static final String STATE_SUFFIX = ".quant_state.bitsandbytes__nf4";
    static final String ABSMAX = ".absmax";
    static final String QUANT_MAP = ".quant_map";
    static final String NESTED_ABSMAX = ".nested_absmax";
    static final String NESTED_QUANT_MAP = ".nested_quant_map";

    private BitsandbytesNf4() {}

    /** torch's name of a dtype, as {@code str(dtype).strip("torch.")} gives it. */
    static String torchName(DType dtype) {
        return switch (dtype) {
            case F32 -> "float32";
            case F16 -> "float16";
            case BF16 -> "bfloat16";
            default -> throw new IllegalArgumentException("bitsandbytes quantizes float32, float16 and bfloat16, not " + dtype);
        };
    }

    static DType fromTorchName(String name) {
        return switch (name) {
            case "float32" -> DType.F32;
            case "float16" -> DType.F16;
            case "bfloat16" -> DType.BF16;
            default -> null;
        };
    }

    /**
     * The quant_state JSON exactly as {@code json.dumps} writes QuantState.as_dict(packed=True)'s
     * non-tensor items: quant_type, blocksize, dtype, shape, then the nested items when double-quantized.
     */
    static String stateJson(int blockSize, DType dtype, long[] shape, Float nestedOffset) {
        StringBuilder json = new StringBuilder("{\"quant_type\": \"nf4\", \"blocksize\": ").append(blockSize)
                .append(", \"dtype\": ").append(PythonJson.string(torchName(dtype)))
                .append(", \"shape\": ").append(Arrays.toString(shape));
        if (nestedOffset != null) {
            json.append(", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ")
                    .append(PythonJson.floatRepr(nestedOffset));
        }
        return json.append('}').toString();
    }

    /** The quantization_config block of config.json that tells transformers to load the file with bitsandbytes. */
    static String quantizationConfig(boolean doubleQuant) {
        return "{\n  \"quantization_config\": {\n"
                + "    \"quant_method\": \"bitsandbytes\",\n"
                + "    \"load_in_4bit\": true,\n"
                + "    \"load_in_8bit\": false,\n"
                + "    \"bnb_4bit_quant_type\": \"nf4\",\n"
                + "    \"bnb_4bit_use_double_quant\": " + doubleQuant + ",\n"
                + "    \"bnb_4bit_compute_dtype\": \"bfloat16\",\n"
                + "    \"bnb_4bit_quant_storage\": \"uint8\"\n"
                + "  }\n}\n";
    }
}
