package dev.qnat.internal;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import dev.qnat.format.FormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * JSON read from files we did not write (safetensors headers, index files, bitsandbytes state): strict
 * UTF-8 first (Jackson would otherwise guess UTF-16 or UTF-32 from leading zero bytes), then a
 * streaming parser that refuses duplicate names.
 */
public final class JsonInput {
    private static final JsonFactory JSON = JsonFactory.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();

    private JsonInput() {}

    /**
     * A parser over {@code bytes}, which must be valid UTF-8; {@code where} names them in errors.
     *
     * @param where names the bytes in messages, e.g. the file and the part of it
     * @param bytes the whole JSON text, UTF-8 encoded
     * @return a parser positioned before the first token, refusing duplicate names in an object
     * @throws FormatException if {@code bytes} are not valid UTF-8 or the parser cannot be created
     */
    public static JsonParser parser(String where, byte[] bytes) throws FormatException {
        String text;
        try {
            text = strictUtf8(ByteBuffer.wrap(bytes));
        } catch (CharacterCodingException e) {
            throw new FormatException(where + " is not valid UTF-8");
        }
        try {
            return JSON.createParser(text);
        } catch (IOException e) {
            throw new FormatException(where + " cannot be parsed: " + e.getMessage(), e);
        }
    }

    /**
     * Decodes UTF-8, refusing malformed bytes rather than replacing them.
     *
     * @param bytes the encoded text, read from its position to its limit
     * @return the decoded text
     * @throws CharacterCodingException the bytes are not valid UTF-8
     */
    public static String strictUtf8(ByteBuffer bytes) throws CharacterCodingException {
        return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT).decode(bytes).toString();
    }

    /**
     * Reads a JSON object whose values are all strings into {@code into}, {@code start} being the token
     * that opens it. Errors begin with {@code what}; a value that is not a string is named
     * {@code what + " " + valueLabel + " 'KEY'"}.
     *
     * @param what names the object at the start of each message
     * @param valueLabel what a value is called in the message about a non-string value, e.g. {@code "entry"}
     * @param json the parser, just past {@code start}; left on the object's closing brace
     * @param start the token already read that must open the object
     * @param into receives each name and its value
     * @throws IOException if the JSON is malformed or repeats a name (Jackson's parse exceptions)
     * @throws FormatException if {@code start} does not open an object or a value is not a string
     */
    public static void readStringMap(String what, String valueLabel, JsonParser json, JsonToken start,
                                     Map<String, String> into) throws IOException, FormatException {
        if (start != JsonToken.START_OBJECT) {
            throw new FormatException(what + " is not an object");
        }
        while (json.nextToken() == JsonToken.FIELD_NAME) {
            String key = json.currentName();
            if (json.nextToken() != JsonToken.VALUE_STRING) {
                throw new FormatException(what + " " + valueLabel + " '" + key + "' is not a string");
            }
            into.put(key, json.getText());
        }
    }
}
