package dev.qnat.format;

import dev.qnat.fuzz.BoundedFuzzTest;
import dev.qnat.nf4.FloatType;
import java.lang.foreign.MemorySegment;

/**
 * The QNAT readers on arbitrary bytes: a valid file, or FormatException, nothing else. The version field
 * is forced so that each target stays on its reader. Regression inputs (valid files and every crash
 * found) live in src/test/resources/dev/qnat/format/QnatFuzzTestInputs/.
 */
class QnatFuzzTest {
    private static final long MAX_VALUES = 1 << 24;

    @BoundedFuzzTest
    void qnatV2(byte[] input) {
        readEverything(withVersion(input, 2));
    }

    @BoundedFuzzTest
    void qnatV1(byte[] input) {
        readEverything(withVersion(input, 1));
    }

    private static byte[] withVersion(byte[] input, int version) {
        if (input.length >= 8) {
            input[0] = 'Q';
            input[1] = 'N';
            input[2] = 'A';
            input[3] = 'T';
            input[4] = (byte) version;
            input[5] = 0;
            input[6] = 0;
            input[7] = 0;
        }
        return input;
    }

    static void readEverything(byte[] input) {
        try (QnatFile file = QnatFile.fromMemory("fuzz.qnat", MemorySegment.ofArray(input), true)) {
            for (QnatTensor t : file.tensors()) {
                file.tensor(t.name()).orElseThrow();
                if (t.encoding() == Encoding.NF4 && t.elementCount() <= MAX_VALUES) {
                    t.dequantize(MemorySegment.ofArray(new short[(int) t.elementCount()]), FloatType.BF16);
                } else {
                    t.data();
                }
            }
            file.verify();
        } catch (FormatException expected) {
            // the documented answer to bad input
        }
    }
}
