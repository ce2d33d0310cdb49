package dev.qnat.safetensors;

import dev.qnat.fuzz.BoundedFuzzTest;
import dev.qnat.format.FormatException;
import java.lang.foreign.MemorySegment;

/**
 * The safetensors reader on arbitrary bytes: it returns a valid file or throws FormatException, and
 * nothing else (no other exception, no OutOfMemoryError, no hang). Regression inputs live in
 * src/test/resources/dev/qnat/safetensors/SafetensorsFuzzTestInputs/.
 */
class SafetensorsFuzzTest {
    @BoundedFuzzTest
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
