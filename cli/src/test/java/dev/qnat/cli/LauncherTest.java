package dev.qnat.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ./qnat launcher started directly and through symlinks. It runs in a copy of the repository's
 * outline, with a find-jdk.sh that names a fake JDK whose java prints its arguments, and an up-to-date
 * jar: so the test needs no build (Maven packages the jar only after the tests) and shows which root
 * the launcher found.
 */
class LauncherTest {
    @TempDir
    Path dir;
    Path repo;
    Path launcher;

    @BeforeEach
    void fakeRepository() throws IOException {
        repo = Files.createDirectories(dir.resolve("repo"));
        launcher = Files.copy(Path.of("..", "qnat"), repo.resolve("qnat"), StandardCopyOption.COPY_ATTRIBUTES);
        Path jdk = dir.resolve("jdk");
        executable(Files.createDirectories(jdk.resolve("bin")).resolve("java"), "echo \"fake java $*\"");
        executable(Files.createDirectories(repo.resolve(".mvn")).resolve("find-jdk.sh"), "echo '" + jdk + "'");
        Path target = Files.createDirectories(repo.resolve("cli/target"));
        Files.createFile(target.resolve("qnat.jvmargs"));
        Files.createFile(target.resolve("qnat.jar"));
    }

    private static void executable(Path file, String body) throws IOException {
        Files.writeString(file, "#!/bin/sh\n" + body + "\n");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    private void run(Path command, String path) throws Exception {
        ProcessBuilder builder = new ProcessBuilder(command.toString(), "--version").redirectErrorStream(true);
        builder.environment().put("PATH", path);
        Process process = builder.start();
        String output = new String(process.getInputStream().readAllBytes());
        assertTrue(process.waitFor(30, TimeUnit.SECONDS), "the launcher finishes");
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.startsWith("fake java ") && output.contains(" -jar " + repo.toRealPath().resolve("cli/target/qnat.jar")
                + " --version"), command + ": " + output);
    }

    @Test
    void findsItsRepositoryThroughSymlinks() throws Exception {
        Path bin = Files.createDirectories(dir.resolve("bin"));
        Path absolute = Files.createSymbolicLink(bin.resolve("qnat"), launcher);
        Path relative = Files.createSymbolicLink(bin.resolve("qnat-relative"), bin.relativize(launcher));
        Path chained = Files.createSymbolicLink(dir.resolve("qnat-chained"), dir.relativize(relative));
        String path = System.getenv("PATH");
        for (Path command : new Path[] {launcher, absolute, relative, chained}) {
            run(command, path);
        }
        // where readlink has no -f, the launcher follows the links itself
        Path oldTools = Files.createDirectories(dir.resolve("old-tools"));
        executable(oldTools.resolve("readlink"), "[ \"$1\" = -f ] && exit 1\nexec " + which("readlink") + " \"$@\"");
        for (Path command : new Path[] {absolute, relative, chained}) {
            run(command, oldTools + ":" + path);
        }
    }

    private static String which(String tool) throws Exception {
        Process process = new ProcessBuilder("sh", "-c", "command -v " + tool).start();
        String found = new String(process.getInputStream().readAllBytes()).strip();
        assertEquals(0, process.waitFor(), "no " + tool + " on the PATH");
        return found;
    }
}
