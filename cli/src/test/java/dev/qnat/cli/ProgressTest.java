package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The progress bar is chosen by whether file descriptor 2 is a terminal, asked of libc. */
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

    @Test
    void aPseudoTerminalIsATerminalAndAFileIsNot() throws Throwable {
        Path file = Files.writeString(dir.resolve("stderr.txt"), "");
        int fileFd = open(file.toString());
        try {
            assertFalse(Progress.isTerminal(fileFd), "a redirect to a file");
        } finally {
            close(fileFd);
        }
        assertFalse(Progress.isTerminal(-1));
        assumeTrue(Files.exists(Path.of("/dev/ptmx")), "no /dev/ptmx to open a pseudo-terminal with");
        int terminalFd = open("/dev/ptmx");
        assumeTrue(terminalFd >= 0, "/dev/ptmx cannot be opened here");
        try {
            assertTrue(Progress.isTerminal(terminalFd), "the isatty call is made, not skipped");
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
