package dev.qnat.io;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import dev.qnat.fuzz.BoundedFuzzTest;
import dev.qnat.fuzz.FuzzDirectory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;

/**
 * The output-path policy on paths built from the names of a sandbox that holds an input, links to it
 * (symbolic and hard), a folder, a link to the folder and a dangling link, joined with {@code .},
 * {@code ..}, empty and arbitrary names. Whatever the path, the answer is a refusal, or a real path in
 * an existing folder that is not the input by any name and is not a folder or a special file.
 */
class OutputTargetFuzzTest {
    private static final Path SANDBOX = sandbox();
    private static final FileSnapshot INPUT = snapshot(SANDBOX.resolve("in.bin"));
    private static final String[] NAMES = {"in.bin", "hard.bin", "link.bin", "sub", "subLink", "dangling", ".", "..",
        "", "new.bin", "sub/in.bin"};

    private static Path sandbox() {
        try {
            Path dir = FuzzDirectory.create("qnat-fuzz-output");
            Files.write(dir.resolve("in.bin"), new byte[] {1, 2, 3});
            Files.createLink(dir.resolve("hard.bin"), dir.resolve("in.bin"));
            Files.createSymbolicLink(dir.resolve("link.bin"), dir.resolve("in.bin"));
            Files.createDirectory(dir.resolve("sub"));
            Files.createSymbolicLink(dir.resolve("sub/in.bin"), Path.of("../in.bin"));
            Files.createSymbolicLink(dir.resolve("subLink"), dir.resolve("sub"));
            Files.createSymbolicLink(dir.resolve("dangling"), dir.resolve("nope"));
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static FileSnapshot snapshot(Path file) {
        try {
            return FileSnapshot.of(file);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @BoundedFuzzTest
    void outputPaths(FuzzedDataProvider data) throws IOException {
        StringBuilder path = new StringBuilder(data.consumeBoolean() ? SANDBOX.toString() : SANDBOX + "/sub/..");
        int parts = data.consumeInt(0, 6);
        for (int i = 0; i < parts; i++) {
            path.append('/').append(data.consumeBoolean() ? data.pickValue(NAMES) : data.consumeString(12));
        }
        Path output;
        try {
            output = Path.of(path.toString());
        } catch (InvalidPathException notAPath) {
            return;
        }
        Path real;
        try {
            real = OutputTarget.resolve(output, List.of(INPUT));
        } catch (OutputTarget.OutputRefusedException | NoSuchFileException | AccessDeniedException refused) {
            return;
        } catch (FileSystemException other) {
            // e.g. a name under a file ("in.bin/x"): the file system's own refusal, with the path
            if (other.getFile() == null) {
                throw other;
            }
            return;
        }
        if (!real.isAbsolute() || !Files.isDirectory(real.getParent(), LinkOption.NOFOLLOW_LINKS)) {
            throw new AssertionError(output + " resolved to " + real + ", not a name in an existing folder");
        }
        if (Files.exists(real)) {
            if (!Files.isRegularFile(real, LinkOption.NOFOLLOW_LINKS)) {
                throw new AssertionError(output + " resolved to " + real + ", which is not a regular file");
            }
            if (Files.isSameFile(real, INPUT.file())) {
                throw new AssertionError(output + " resolved to " + real + ", which is the input");
            }
        }
    }
}
