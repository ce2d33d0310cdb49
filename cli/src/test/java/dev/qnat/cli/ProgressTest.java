package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.Writer;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The progress bar is chosen by whether file descriptor 2 is a terminal, asked of /proc or of libc. */
class ProgressTest {
    private static final int O_RDWR = 2;
    private static final int O_NOCTTY = 0x100; // Linux; keeps the pseudo-terminal from becoming ours

    @TempDir
    Path dir;

    @Test
    void stderrUnderSurefireIsAPipeNotATerminal() {
        assertFalse(Progress.onTerminal(), "surefire reads the test JVM's stderr through a pipe");
    }

    /** Run under script(1), stdin and stdout on a pseudo-terminal: what the old check and the new one say. */
    static final class Probe {
        public static void main(String[] args) {
            System.out.println("console says " + (System.console() != null && System.console().isTerminal())
                    + ", fd 2 says " + Progress.onTerminal());
        }
    }

    @Test
    void stderrRedirectedToAFileFromATerminalIsNoTerminal() throws Exception {
        assumeTrue(Files.isExecutable(Path.of("/usr/bin/script")), "no script(1) to give the probe a terminal");
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Path stderr = dir.resolve("stderr.txt");
        String probe = "'" + java + "' --enable-native-access=ALL-UNNAMED -cp '" + System.getProperty("java.class.path")
                + "' '" + Probe.class.getName() + "' 2>'" + stderr + "'";
        Process process = new ProcessBuilder("/usr/bin/script", "-qec", probe, "/dev/null")
                .redirectInput(Path.of("/dev/null").toFile()).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes());
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the probe finishes");
        assertEquals(0, process.exitValue(), output + Files.readString(stderr));
        assertTrue(output.contains("console says true, fd 2 says false"), output);
    }

    /** The bar as a terminal gets it: 79 columns unless COLUMNS is exported, the whole job at the end. */
    @Test
    void theBarIsDrawnOnStandardErrorWithinTheWidth() {
        PrintStream saved = System.err;
        ByteArrayOutputStream drawn = new ByteArrayOutputStream();
        System.setErr(new PrintStream(drawn, true, StandardCharsets.UTF_8));
        try (Progress progress = new Progress("quantize", 3L << 20, new PrintWriter(Writer.nullWriter()), true)) {
            progress.advance(1L << 20);
            progress.advance(2L << 20);
        } finally {
            System.setErr(saved);
        }
        String text = drawn.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("quantize 100%") && text.contains("3/3 MB"), text);
        String columns = System.getenv("COLUMNS");
        int width = columns != null && columns.matches("[0-9]+") ? Math.max(20, Integer.parseInt(columns) - 1) : 79;
        for (String line : text.split("[\r\n]")) {
            String visible = line.replaceAll("\u001b\\[[0-9]*[A-Za-z]", "");
            assertTrue(visible.length() <= width, "at most " + width + " columns: '" + visible + "'");
        }
    }

    /** Both answers: /proc/self/fd where there is one, and libc's isatty, which other systems use. */
    @Test
    void aPseudoTerminalIsATerminalAndAFileIsNot() throws Throwable {
        Path file = Files.writeString(dir.resolve("stderr.txt"), "");
        int fileFd = open(file.toString());
        try {
            assertFalse(Progress.isTerminal(fileFd), "a redirect to a file");
            assertFalse(Progress.isatty(fileFd), "a redirect to a file, by isatty");
        } finally {
            close(fileFd);
        }
        assertFalse(Progress.isTerminal(-1));
        assertFalse(Progress.isatty(-1));
        assumeTrue(Files.exists(Path.of("/dev/ptmx")), "no /dev/ptmx to open a pseudo-terminal with");
        int terminalFd = open("/dev/ptmx");
        assumeTrue(terminalFd >= 0, "/dev/ptmx cannot be opened here");
        try {
            assertTrue(Progress.isTerminal(terminalFd), "a pseudo-terminal");
            assertTrue(Progress.isatty(terminalFd), "the isatty call is made, not skipped");
            Path link = Path.of("/proc/self/fd", Integer.toString(terminalFd));
            if (Files.isDirectory(link.getParent())) {
                assertTrue(Progress.namesTerminal(link), "by the device /proc names");
            }
        } finally {
            close(terminalFd);
        }
    }

    @SuppressWarnings("restricted")
    private static MethodHandle libc(String name, FunctionDescriptor descriptor) {
        Linker linker = Linker.nativeLinker();
        return linker.downcallHandle(linker.defaultLookup().find(name).orElseThrow(), descriptor);
    }

    private static int open(String path) throws Throwable {
        try (Arena arena = Arena.ofConfined()) {
            return (int) libc("open", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_INT))
                    .invokeExact(arena.allocateFrom(path), O_RDWR | O_NOCTTY);
        }
    }

    private static void close(int fd) throws Throwable {
        int ignored = (int) libc("close", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT)).invokeExact(fd);
    }
}
