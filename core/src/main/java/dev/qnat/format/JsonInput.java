package dev.qnat.format;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * JSON read from files we did not write (safetensors headers, index files, bitsandbytes state): strict
 * UTF-8 first (Jackson would otherwise guess UTF-16 or UTF-32 from leading zero bytes), then a
 * streaming parser that refuses duplicate names.
 */
public final class JsonInput {
    private static final JsonFactory JSON = JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private JsonInput() {}

    /** A parser over {@code bytes}, which must be valid UTF-8; {@code where} names them in errors. */
    public static JsonParser parser(String where, byte[] bytes) throws FormatException {
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new FormatException(where + " is not valid UTF-8");
        }
        try {
            return JSON.createParser(text);
        } catch (IOException e) {
            throw new FormatException(where + " cannot be parsed: " + e.getMessage(), e);
        }
    }
}
