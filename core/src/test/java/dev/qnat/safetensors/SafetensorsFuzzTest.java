package dev.qnat.safetensors;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.qnat.format.FormatException;
import java.lang.foreign.MemorySegment;

/**
 * The safetensors reader on arbitrary bytes: it returns a valid file or throws FormatException, and
 * nothing else (no other exception, no OutOfMemoryError, no hang). Regression inputs live in
 * src/test/resources/dev/qnat/safetensors/SafetensorsFuzzTestInputs/.
 */
class SafetensorsFuzzTest {
    @FuzzTest(maxDuration = "60s")
    void safetensors(byte[] input) {
        try (SafetensorsFile file = SafetensorsFile.fromMemory("fuzz.safetensors", MemorySegment.ofArray(input))) {
            for (SafetensorsTensor t : file.tensors()) {
                t.data().byteSize();
                t.elementCount();
            }
        } catch (FormatException expected) {
            // the documented answer to bad input
        }
    }
}
