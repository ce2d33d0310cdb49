package dev.qnat.cli;

import dev.qnat.Qnat;
import dev.qnat.format.FormatException;
import dev.qnat.format.NonFiniteTensorException;
import dev.qnat.io.FileSnapshot;
import dev.qnat.io.OutputTarget;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.NoSuchFileException;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The {@code qnat} command line. */
@Command(name = "qnat", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "NF4 (4-bit NormalFloat) quantization of safetensors checkpoints, on the JVM.",
        footerHeading = "%nExit codes:%n",
        footer = {"  0  success", "  1  verification or comparison failed", "  2  usage error",
            "  3  unreadable or malformed input", "  4  I/O failure (disk full, permission)"})
public final class Main implements Runnable {
    static final int OK = 0;
    static final int FAILED = 1;
    static final int USAGE = 2;
    static final int BAD_INPUT = 3;
    static final int IO = 4;

    @Option(names = "--verbose", description = "Print stack traces with errors.", scope = CommandLine.ScopeType.INHERIT)
    boolean verbose;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"qnat " + Qnat.VERSION + " (Java " + Runtime.version() + ")"};
        }
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static void main(String[] args) {
        System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
    }

    /** The subcommands, in the order the usage lists them. */
    private static final List<Class<?>> SUBCOMMANDS = List.of(QuantizeCommand.class, InspectCommand.class,
            VerifyCommand.class, DequantizeCommand.class, CompareCommand.class, DemoCommand.class, BenchCommand.class,
            CommandLine.HelpCommand.class);

    /** Runs the command line with the given streams; returns the exit code. */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine commandLine = new CommandLine(new Main());
        // Only the subcommand named, where one is: picocli builds a reflective model of every subcommand it
        // is given (inspect of a small file: 0.58 s with all eight, 0.52 s with its own). Usage, help and a
        // mistyped name get them all.
        Class<?> named = named(args);
        for (Class<?> subcommand : SUBCOMMANDS) {
            if (named == null || subcommand == named) {
                commandLine.addSubcommand(subcommand);
            }
        }
        commandLine.setOut(out);
        commandLine.setErr(err);
        commandLine.setExecutionExceptionHandler((e, cmd, parsed) -> {
            boolean verbose = parsed.matchedOption("--verbose") != null
                    || parsed.subcommands().stream().anyMatch(p -> p.matchedOption("--verbose") != null);
            err.println("qnat: " + describe(e));
            if (verbose) {
                e.printStackTrace(err);
            }
            err.flush();
            return exitCode(e);
        });
        return commandLine.execute(args);
    }

    /** The subcommand the first argument that is not an option names, if it names one other than help. */
    private static Class<?> named(String[] args) {
        for (String arg : args) {
            if (!arg.startsWith("-")) {
                for (Class<?> subcommand : SUBCOMMANDS) {
                    Command command = subcommand.getAnnotation(Command.class);
                    if (command.name().equals(arg) && subcommand != CommandLine.HelpCommand.class) {
                        return subcommand;
                    }
                }
                return null;
            }
        }
        return null;
    }

    static int exitCode(Throwable e) {
        if (e instanceof FormatException || e instanceof NonFiniteTensorException
                || e instanceof FileSnapshot.NotRegularFileException) {
            return BAD_INPUT;
        }
        if (e instanceof OutputTarget.OutputRefusedException) {
            return USAGE;
        }
        if (isMappedReadFault(e)) {
            return IO;
        }
        if (e instanceof IOException) {
            return IO;
        }
        if (e instanceof IllegalArgumentException || e instanceof CommandLine.ParameterException) {
            return USAGE;
        }
        return FAILED;
    }

    /** The JVM's error for a read of a mapped page that its file no longer backs. */
    static boolean isMappedReadFault(Throwable e) {
        return e instanceof InternalError && e.getMessage() != null && e.getMessage().contains("unsafe memory access");
    }

    private static String describe(Throwable e) {
        if (isMappedReadFault(e)) {
            return "an input file was truncated while it was being read (" + e.getMessage() + ")";
        }
        if (e instanceof NoSuchFileException missing) {
            return missing.getReason() != null ? missing.getFile() + ": " + missing.getReason()
                    : "no such file: " + missing.getFile();
        }
        if (e instanceof java.nio.file.AccessDeniedException denied) {
            return "permission denied: " + denied.getFile();
        }
        if (e instanceof java.nio.file.FileSystemException fs && fs.getReason() != null) {
            return fs.getFile() + ": " + fs.getReason();
        }
        String message = e.getMessage();
        return message == null || message.isBlank() ? e.getClass().getSimpleName() : message;
    }
}
