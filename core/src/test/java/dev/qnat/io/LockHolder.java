package dev.qnat.io;

import dev.qnat.TestJvm;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** A child process that holds a lock on a file, as a live writer holds its temp file, until its stdin closes. */
public final class LockHolder {
    private LockHolder() {}

    public static void main(String[] args) throws Exception {
        try (FileChannel channel = FileChannel.open(Path.of(args[0]), StandardOpenOption.WRITE)) {
            channel.lock();
            System.out.println("locked");
            System.out.flush();
            System.in.read();
        }
    }

    /** Starts a holder of {@code file}'s lock and waits until it holds it. */
    public static Process start(Path file) throws Exception {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process process = new ProcessBuilder(java.toString(), "-cp", TestJvm.classPath(),
                LockHolder.class.getName(), file.toString()).redirectErrorStream(true).start();
        String line = new java.io.BufferedReader(new java.io.InputStreamReader(process.getInputStream())).readLine();
        if (!"locked".equals(line)) {
            process.destroyForcibly();
            throw new IllegalStateException("the lock holder said " + line);
        }
        return process;
    }
}
