package dev.qnat.nf4.kernel;

import java.lang.System.Logger.Level;

/**
 * Chooses the matrix kernels once, with the codec's choice: where {@link Nf4KernelProvider} runs the vector
 * kernels (at the width {@code qnat.vector.bits} forces, or the platform's), so do these, at the same
 * width; where it runs the scalar reference, so do these.
 */
public final class MatVecKernelProvider {
    private static final System.Logger LOG = System.getLogger("dev.qnat.nf4");
    private static final MatVecKernels CHOSEN = choose();

    private MatVecKernelProvider() {}

    /** The kernels this JVM uses. */
    public static MatVecKernels kernels() {
        return CHOSEN;
    }

    /** The scalar reference. */
    public static MatVecKernels scalar() {
        return ScalarMatVecKernels.INSTANCE;
    }

    private static MatVecKernels choose() {
        if (Nf4KernelProvider.platformKernels() == Nf4KernelProvider.scalar()) {
            return ScalarMatVecKernels.INSTANCE; // the codec's provider has logged why
        }
        try {
            // Loaded by name so that this class never links against jdk.incubator.vector itself.
            Class<?> panama = Class.forName("dev.qnat.nf4.kernel.PanamaMatVecKernels");
            return (MatVecKernels) panama.getDeclaredField("INSTANCE").get(null);
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            Throwable cause = e instanceof ExceptionInInitializerError ? e.getCause() : e;
            LOG.log(Level.WARNING, "qnat: matrix products run on the scalar kernels, the vector kernels cannot start: "
                    + cause.getMessage());
            return ScalarMatVecKernels.INSTANCE;
        }
    }
}
