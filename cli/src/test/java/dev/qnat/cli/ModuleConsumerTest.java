package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.JsonFactory;
import dev.qnat.Qnat;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import javax.tools.ToolProvider;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A user's project that depends on the core jar as the named module dev.qnat.core: compiled with javac
 * on the module path and run with java, with and without the Vector API's module.
 */
class ModuleConsumerTest {
    private static final String MODULE_INFO = """
            module example.consumer {
                requires dev.qnat.core;
            }
            """;
    private static final String MAIN = """
            package example.consumer;

            import dev.qnat.nf4.Nf4;
            import java.util.Arrays;

            public class Main {
                public static void main(String[] args) {
                    float[] weights = new float[4096];
                    for (int i = 0; i < weights.length; i++) {
                        weights[i] = (float) Math.sin(i * 0.37) * 0.02f;
                    }
                    byte[] codes = new byte[(int) Nf4.packedSize(weights.length)];
                    float[] absmax = new float[(int) Nf4.blockCount(weights.length, 64)];
                    Nf4.quantize(weights, 64, codes, absmax);
                    float[] restored = new float[weights.length];
                    Nf4.dequantize(codes, absmax, 64, restored);
                    System.out.println("module " + Nf4.class.getModule().getName());
                    System.out.println("kernels exported " + Nf4.class.getModule().isExported("dev.qnat.nf4.kernel"));
                    System.out.println("codes " + Arrays.hashCode(codes) + " restored " + Arrays.hashCode(restored));
                }
            }
            """;
    private static final String SCALAR_WARNING = "qnat: NF4 runs on the scalar kernels, the JVM was started without "
            + "--add-modules jdk.incubator.vector";

    @TempDir
    Path dir;
    String modulePath;

    private record Run(int code, String out, String err) {}

    @BeforeEach
    void findTheLibrary() throws Exception {
        // The core jar (or, run alone from the IDE, its classes folder) and its one dependency.
        modulePath = location(Qnat.class) + File.pathSeparator + location(JsonFactory.class);
    }

    private static String location(Class<?> type) throws Exception {
        return Path.of(type.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
    }

    /** Compiles the consumer module; returns javac's exit code and diagnostics. */
    private Run compile(String main) throws Exception {
        Path source = dir.resolve("src/example.consumer");
        Files.createDirectories(source.resolve("example/consumer"));
        Files.writeString(source.resolve("module-info.java"), MODULE_INFO);
        Files.writeString(source.resolve("example/consumer/Main.java"), main);
        ByteArrayOutputStream diagnostics = new ByteArrayOutputStream();
        int code = ToolProvider.getSystemJavaCompiler().run(null, diagnostics, diagnostics,
                "--module-path", modulePath, "-d", dir.resolve("classes").toString(),
                source.resolve("module-info.java").toString(), source.resolve("example/consumer/Main.java").toString());
        return new Run(code, "", diagnostics.toString(StandardCharsets.UTF_8));
    }

    private Run run(String... jvmArgs) throws Exception {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        command.addAll(List.of(jvmArgs));
        command.addAll(List.of("--module-path", modulePath + File.pathSeparator + dir.resolve("classes"),
                "-m", "example.consumer/example.consumer.Main"));
        Process process = new ProcessBuilder(command).redirectError(dir.resolve("stderr").toFile()).start();
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the consumer did not finish");
        return new Run(process.exitValue(), out, Files.readString(dir.resolve("stderr")));
    }

    @Test
    void runsOnTheVectorKernelsWithTheVectorModuleAndOnTheScalarOnesWithOneWarningWithout() throws Exception {
        Run compiled = compile(MAIN);
        assertEquals(0, compiled.code(), compiled.err());

        // JUL shows the provider's debug line that names the kernels it chose.
        Path logging = dir.resolve("logging.properties");
        Files.writeString(logging, """
                handlers=java.util.logging.ConsoleHandler
                java.util.logging.ConsoleHandler.level=FINE
                dev.qnat.nf4.level=FINE
                """);
        Run vector = run("--add-modules", "jdk.incubator.vector,java.logging",
                "-Djava.util.logging.config.file=" + logging);
        assertEquals(0, vector.code(), vector.err());
        assertTrue(vector.out().startsWith("module dev.qnat.core\nkernels exported false\n"), vector.out());
        assertTrue(vector.err().contains("qnat: NF4 runs on the "), vector.err());
        assertFalse(vector.err().contains("scalar"), vector.err());

        Run scalar = run();
        assertEquals(0, scalar.code(), scalar.err());
        assertEquals(1, scalar.err().lines().filter(line -> line.contains(SCALAR_WARNING)).count(), scalar.err());
        assertEquals(vector.out(), scalar.out(), "the scalar kernels agree with the vector ones bit for bit");
    }

    @Test
    void theKernelPackageIsNotExported() throws Exception {
        Run compiled = compile(MAIN.replace("import java.util.Arrays;",
                "import java.util.Arrays;\nimport dev.qnat.nf4.kernel.Nf4KernelProvider;"));
        assertNotEquals(0, compiled.code(), "a consumer compiled against a kernel class");
        assertTrue(compiled.err().contains("dev.qnat.nf4.kernel"), compiled.err());
    }
}
