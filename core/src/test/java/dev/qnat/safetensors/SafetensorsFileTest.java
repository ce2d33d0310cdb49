package dev.qnat.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.qnat.format.DType;
import dev.qnat.format.FormatException;
import dev.qnat.format.TensorToWrite;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The safetensors reader on hand-made files: what it accepts, and each check of the reference reader. */
class SafetensorsFileTest {
    @TempDir
    Path dir;

    /** Header length, JSON header, data: a file as the format describes it, built by hand. */
    static byte[] file(String json, byte[] data) {
        byte[] header = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length).put(header).put(data);
        return b.array();
    }

    private Path write(byte[] bytes) throws Exception {
        Path file = dir.resolve("t.safetensors");
        Files.write(file, bytes);
        return file;
    }

    private static byte[] floats(float... values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            b.putFloat(v);
        }
        return b.array();
    }

    @Test
    void readsAHandMadeFile() throws Exception {
        String json = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[16,20]},"
                + "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[20,28]},"
                + "\"e\":{\"dtype\":\"U8\",\"shape\":[0,3],\"data_offsets\":[28,28]}}   ";
        byte[] data = new byte[28];
        System.arraycopy(floats(1f, 2f, 3f, 4f), 0, data, 0, 16);
        data[18] = (byte) 0x80;
        data[19] = 0x3F; // BF16 1.0 in element 1
        data[20] = 42;
        try (SafetensorsFile f = SafetensorsFile.open(write(file(json, data)))) {
            assertEquals(Map.of("format", "pt"), f.metadata());
            assertEquals(List.of("w", "b", "s", "e"), f.tensors().stream().map(SafetensorsTensor::name).toList());
            SafetensorsTensor w = f.tensor("w").orElseThrow();
            assertEquals(DType.F32, w.dtype());
            assertArrayEquals(new long[] {2, 2}, w.shape());
            assertEquals(3f, w.data().getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, 2));
            assertEquals((short) 0x3F80, f.tensor("b").orElseThrow().data().getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, 1));
            assertEquals(1, f.tensor("s").orElseThrow().elementCount());
            assertEquals(0, f.tensor("e").orElseThrow().data().byteSize());
        }
    }

    private void assertRefused(byte[] bytes, String expectedFragment) throws Exception {
        Path file = write(bytes);
        FormatException e = assertThrows(FormatException.class, () -> SafetensorsFile.open(file).close());
        assertTrue(e.getMessage().contains(expectedFragment), e.getMessage());
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertEquals(e.getMessage().indexOf(file.toString()), e.getMessage().lastIndexOf(file.toString()),
                "the file is named once: " + e.getMessage());
    }

    @Test
    void eachReferenceCheckHasItsMessage() throws Exception {
        String one = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
        assertRefused(new byte[5], "too few");
        byte[] huge = new byte[16];
        ByteBuffer.wrap(huge).order(ByteOrder.LITTLE_ENDIAN).putLong(100_000_001L);
        assertRefused(huge, "over the limit");
        byte[] past = new byte[16];
        ByteBuffer.wrap(past).order(ByteOrder.LITTLE_ENDIAN).putLong(9);
        assertRefused(past, "runs past the end");
        assertRefused(file("{" + one + "}", new byte[7]), "ends at offset");
        assertRefused(file("{" + one + "}", new byte[9]), "ends at offset");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", new byte[8]), "needs 12");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]), "gap");
        assertRefused(file("{" + one + ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]),
                "overlaps");
        assertRefused(file("{" + one + "," + one + "}", new byte[8]), "not valid JSON");
        assertRefused(file("{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]), "unknown dtype");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", new byte[8]), "not an integer");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", new byte[8]), "expected 2");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", new byte[8]), "lacks data_offsets");
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,8]}}",
                new byte[8]), "too many");
        assertRefused(file("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", new byte[2]), "whole bytes");
        assertRefused(file("[1,2]", new byte[0]), "not a JSON object");
        assertRefused(file("{" + one, new byte[8]), "not valid JSON");
        byte[] badUtf8 = file("{\"\u00e9\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]);
        badUtf8[10] = (byte) 0xFF;
        assertRefused(badUtf8, "not valid UTF-8");
        assertRefused(file("{\"__metadata__\":{\"n\":1}}", new byte[0]), "not a string");
    }

    @Test
    void namesAndRanksQnatCannotHoldAreRefused() throws Exception {
        String sixtyFour = "[" + "1,".repeat(TensorToWrite.MAX_RANK - 1) + "2]";
        try (SafetensorsFile f = SafetensorsFile.open(write(file(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":" + sixtyFour + ",\"data_offsets\":[0,8]}}", new byte[8])))) {
            assertEquals(TensorToWrite.MAX_RANK, f.tensor("a").orElseThrow().shape().length);
        }
        String sixtyFive = "[" + "1,".repeat(TensorToWrite.MAX_RANK) + "2]";
        assertRefused(file("{\"a\":{\"dtype\":\"F32\",\"shape\":" + sixtyFive + ",\"data_offsets\":[0,8]}}", new byte[8]),
                "tensor 'a' shape has more than 64 entries");
        assertRefused(file("{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", new byte[8]),
                "a tensor has an empty name");
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 7, 13})
    void truncationsAndFlippedBytesMeetOnlyTheCheckedException(int seed) throws Exception {
        String json = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[16,20]}}";
        byte[] valid = file(json, new byte[20]);
        java.util.SplittableRandom random = new java.util.SplittableRandom(seed);
        for (int length = 0; length < valid.length; length++) {
            tryOpen(Arrays.copyOf(valid, length));
        }
        for (int i = 0; i < 2000; i++) {
            byte[] bytes = valid.clone();
            int at = random.nextInt(Math.min(bytes.length, 8 + json.length()));
            bytes[at] = (byte) random.nextInt(256);
            tryOpen(bytes);
        }
    }

    private void tryOpen(byte[] bytes) throws Exception {
        Path file = write(bytes);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            f.tensors().forEach(t -> t.data().byteSize());
        } catch (FormatException expected) {
            // the one documented outcome for bad input
        } catch (Exception | Error e) {
            fail("bytes " + Arrays.toString(bytes) + ": " + e, e);
        }
    }
}
