package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import dev.qnat.fuzz.BoundedFuzzTest;
import dev.qnat.nf4.kernel.Nf4KernelProvider;
import java.lang.foreign.MemorySegment;

/**
 * The codec on arbitrary bit patterns, lengths and block sizes: the vector kernels give the scalar
 * reference's bytes, absmax and MSE scales alike, or the call fails with one of the documented exceptions
 * and writes nothing.
 */
class CodecFuzzTest {
    @BoundedFuzzTest
    void vectorEqualsScalar(FuzzedDataProvider data) {
        int blockSize = data.consumeInt(-4, 5000);
        FloatType type = data.pickValue(FloatType.values());
        byte[] bytes = data.consumeRemainingAsBytes();
        int count = bytes.length / type.byteSize();
        MemorySegment src = MemorySegment.ofArray(bytes).asSlice(0, (long) count * type.byteSize());
        byte[] codes = new byte[(int) Nf4.packedSize(count)];
        long blocks = blockSize >= 2 && blockSize % 2 == 0 ? Nf4.blockCount(count, blockSize) : 0;
        float[] absmax = new float[(int) blocks];
        try {
            Nf4.quantize(src, type, blockSize, MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax));
        } catch (IllegalArgumentException expected) { // NonFiniteValueException included
            assertEquals(-1, MemorySegment.ofArray(codes).mismatch(MemorySegment.ofArray(new byte[codes.length])));
            return;
        }
        byte[] expectedCodes = new byte[codes.length];
        float[] expectedAbsmax = new float[absmax.length];
        Nf4KernelProvider.scalar().quantize(src, type, count, blockSize, 0, blocks, MemorySegment.ofArray(expectedCodes),
                MemorySegment.ofArray(expectedAbsmax));
        assertEquals(-1, MemorySegment.ofArray(expectedCodes).mismatch(MemorySegment.ofArray(codes)), "codes");
        assertEquals(-1, MemorySegment.ofArray(expectedAbsmax).mismatch(MemorySegment.ofArray(absmax)), "absmax");
        // MSE scales on the same finite input: the vector kernels' scale search gives the reference's bytes too.
        byte[] mseCodes = new byte[codes.length];
        float[] mseScales = new float[absmax.length];
        Nf4.quantize(src, type, blockSize, MemorySegment.ofArray(mseCodes), MemorySegment.ofArray(mseScales), ScaleRule.MSE);
        byte[] expectedMseCodes = new byte[codes.length];
        float[] expectedMseScales = new float[absmax.length];
        Nf4KernelProvider.scalar().mseScales(src, type, count, blockSize, 0, blocks, MemorySegment.ofArray(expectedMseScales));
        Nf4KernelProvider.scalar().encode(src, type, count, blockSize, 0, blocks, MemorySegment.ofArray(expectedMseScales),
                MemorySegment.ofArray(expectedMseCodes), null);
        assertEquals(-1, MemorySegment.ofArray(expectedMseCodes).mismatch(MemorySegment.ofArray(mseCodes)), "MSE codes");
        assertEquals(-1, MemorySegment.ofArray(expectedMseScales).mismatch(MemorySegment.ofArray(mseScales)), "MSE scales");
        for (FloatType out : FloatType.values()) {
            byte[] vector = new byte[count * out.byteSize()];
            byte[] scalar = new byte[count * out.byteSize()];
            Nf4.dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), blockSize, MemorySegment.ofArray(vector),
                    out);
            Nf4KernelProvider.scalar().dequantize(MemorySegment.ofArray(codes), MemorySegment.ofArray(absmax), blockSize,
                    count, 0, blocks, MemorySegment.ofArray(scalar), out);
            assertEquals(-1, MemorySegment.ofArray(scalar).mismatch(MemorySegment.ofArray(vector)), "dequantized " + out);
        }
    }
}
