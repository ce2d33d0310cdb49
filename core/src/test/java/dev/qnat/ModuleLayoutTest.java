package dev.qnat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.qnat.nf4.Nf4;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Core's tests run inside the named module {@code dev.qnat.core} (surefire's module path, the test classes
 * patched in), so they see the library as its module descriptor exposes it, not as loose classes.
 */
class ModuleLayoutTest {
    @Test
    void testsRunInTheNamedModule() {
        Module core = Nf4.class.getModule();
        assertTrue(core.isNamed(), "core's classes are on the class path: " + core);
        assertEquals("dev.qnat.core", core.getName());
        assertEquals(core, ModuleLayoutTest.class.getModule(), "the tests are patched into the module");
    }

    @Test
    void theKernelsAreNotExported() {
        Module core = Nf4.class.getModule();
        Set<String> exported = Set.of("dev.qnat", "dev.qnat.bnb", "dev.qnat.concurrent", "dev.qnat.convert",
                "dev.qnat.format", "dev.qnat.io", "dev.qnat.nf4", "dev.qnat.safetensors");
        for (String p : core.getPackages()) {
            assertEquals(exported.contains(p), core.isExported(p), p);
        }
        assertFalse(core.isExported("dev.qnat.nf4.kernel"));
    }
}
