package dev.qnat.nf4.kernel;

import java.lang.foreign.MemorySegment;
import com.sun.management.HotSpotDiagnosticMXBean;
import java.lang.System.Logger.Level;
import java.lang.management.ManagementFactory;
import java.util.Optional;

/**
 * Chooses the NF4 kernels once, when first needed: the Panama Vector API kernels when the platform can
 * run them well, otherwise the scalar reference, with one log line saying why. A process that said it
 * has little to quantize never needs them for that, and never loads them (about 0.1 s of a small
 * model's run: the Vector API's classes, the kernels' tables built by the interpreter). The system property
 * {@code qnat.vector.bits} forces a width (128, 256 or 512) for tests and benchmarks; {@code scalar}
 * forces the reference.
 */
public final class Nf4KernelProvider {
    private static final System.Logger LOG = System.getLogger("dev.qnat.nf4");
    private static final SmallWorkNf4Kernels CHOSEN =
            new SmallWorkNf4Kernels(ScalarNf4Kernels.INSTANCE, Nf4KernelProvider::platformKernels);
    private static final Nf4Kernels STAGED = new StagedNf4Kernels(CHOSEN);

    /** The platform's choice, made when this class is first used (the JVM makes that lazy and safe). */
    private static final class Platform {
        static final Nf4Kernels CHOSEN = choose();
    }

    private Nf4KernelProvider() {}

    /** The kernels this JVM uses. */
    public static Nf4Kernels kernels() {
        return CHOSEN;
    }

    /**
     * The kernels for work that reads these inputs: the chosen ones, staged through a heap buffer when
     * an input is a mapped file, so that a file truncated under the mapping cannot crash the JVM.
     */
    public static Nf4Kernels kernelsReading(MemorySegment... inputs) {
        for (MemorySegment input : inputs) {
            if (input.isMapped()) {
                return STAGED;
            }
        }
        return CHOSEN;
    }

    /**
     * The kernels the platform runs best, the vector or the scalar ones, chosen on the first call.
     *
     * @return the chosen kernels, unwrapped: {@link #scalar()} where the vector kernels cannot run well
     */
    public static Nf4Kernels platformKernels() {
        return Platform.CHOSEN;
    }

    /**
     * The process will quantize about {@code elements} elements from now on, on {@code threads} threads:
     * little enough per thread, and quantize calls run on the scalar kernels, which give the same bytes
     * without waiting for the JIT (see SmallWorkNf4Kernels).
     */
    public static void expectWork(long elements, int threads) {
        CHOSEN.expectWork(elements, threads);
    }

    /** The name of the kernels that quantize calls run on now. */
    public static String quantizingName() {
        return CHOSEN.quantizing().name();
    }

    /** The scalar reference kernels. */
    public static Nf4Kernels scalar() {
        return ScalarNf4Kernels.INSTANCE;
    }

    private static Nf4Kernels choose() {
        if ("scalar".equals(System.getProperty(PanamaNf4Kernels.WIDTH_PROPERTY))) {
            return ScalarNf4Kernels.INSTANCE;
        }
        Optional<String> obstacle = vectorObstacle();
        if (obstacle.isPresent()) {
            LOG.log(Level.WARNING, "qnat: NF4 runs on the scalar kernels, " + obstacle.get());
            return ScalarNf4Kernels.INSTANCE;
        }
        try {
            // Loaded by name so that this class never links against jdk.incubator.vector itself.
            Class<?> panama = Class.forName("dev.qnat.nf4.kernel.PanamaNf4Kernels");
            Nf4Kernels kernels = (Nf4Kernels) panama.getDeclaredField("INSTANCE").get(null);
            LOG.log(Level.DEBUG, "qnat: NF4 runs on the " + kernels.name() + " kernels");
            return kernels;
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            Throwable cause = e instanceof ExceptionInInitializerError ? e.getCause() : e;
            LOG.log(Level.WARNING, "qnat: NF4 runs on the scalar kernels, the vector kernels cannot start: "
                    + cause.getMessage());
            return ScalarNf4Kernels.INSTANCE;
        }
    }

    /** Why the vector kernels should not run here, if there is a reason. */
    private static Optional<String> vectorObstacle() {
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            return Optional.of("the JVM was started without --add-modules jdk.incubator.vector");
        }
        try {
            HotSpotDiagnosticMXBean vm = ManagementFactory.getPlatformMXBean(HotSpotDiagnosticMXBean.class);
            if (vm != null) {
                if (!Boolean.parseBoolean(vm.getVMOption("UseCompiler").getValue())) {
                    return Optional.of("the JIT compiler is off (-Xint)");
                }
                boolean tiered = Boolean.parseBoolean(vm.getVMOption("TieredCompilation").getValue());
                int stopAt = Integer.parseInt(vm.getVMOption("TieredStopAtLevel").getValue());
                if (tiered && stopAt < 4) {
                    return Optional.of("C2 is off (-XX:TieredStopAtLevel=" + stopAt + ")");
                }
            }
        } catch (RuntimeException | LinkageError e) {
            // No HotSpot diagnostics here (another VM or no jdk.management); judge by the species alone.
        }
        return Optional.empty();
    }
}
