package dev.qnat.nf4.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassModel;
import java.lang.classfile.MethodModel;
import java.lang.classfile.attribute.CodeAttribute;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The rule that keeps the vector kernels off the boxing cliff: a method that takes or returns a vector
 * has at most 35 bytes of bytecode (C2's MaxInlineSize), so it is inlined whatever the profile says.
 * Only the kernel entry points, whose parameters are plain values, may be longer.
 */
class VectorHelperSizeTest {
    private static final int MAX_INLINE_SIZE = 35;

    @Test
    void everyVectorTypedMethodIsSmallEnoughToAlwaysInline() throws IOException {
        ClassModel kernels;
        try (InputStream in = PanamaNf4Kernels.class.getResourceAsStream("PanamaNf4Kernels.class")) {
            kernels = ClassFile.of().parse(in.readAllBytes());
        }
        List<String> vectorTyped = new ArrayList<>();
        List<String> tooBig = new ArrayList<>();
        for (MethodModel method : kernels.methods()) {
            String descriptor = method.methodType().stringValue();
            if (!descriptor.contains("Ljdk/incubator/vector/")) {
                continue;
            }
            String name = method.methodName().stringValue() + descriptor;
            vectorTyped.add(name);
            int size = method.findAttribute(java.lang.classfile.Attributes.code()).map(CodeAttribute::codeLength)
                    .orElseThrow();
            if (size > MAX_INLINE_SIZE) {
                tooBig.add(name + ": " + size + " bytes");
            }
        }
        assertTrue(vectorTyped.size() >= 10, "found only " + vectorTyped + "; did the kernels move?");
        assertEquals(List.of(), tooBig, "vector-typed methods over " + MAX_INLINE_SIZE + " bytes of bytecode");
    }
}
