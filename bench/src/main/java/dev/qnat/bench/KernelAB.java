package dev.qnat.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Executor;

/**
 * Two builds of qnat-core side by side in one JVM, each in its own class loader, run in alternated rounds:
 * the median per-round ratio B / A is the figure, which holds where this machine's speed drifts by 20 %
 * or more between forks (separate JMH forks of the same code differed that much here). An A/A run gave
 * 1.003, quartiles 0.96 and 1.03. Run by {@code bench/kernel-ab.sh}; not a JMH benchmark because JMH
 * cannot load two versions of one class.
 *
 * <p>Usage: {@code KernelAB CLASSPATH_A CLASSPATH_B OP [TYPE] [ELEMENTS] [ROUNDS]}, OP one of
 * {@code quantize} (absmax scales), {@code measured} (quantize with the accuracy figures), {@code measured-dq}
 * (the same keeping the per-block terms, as {@code qnat quantize} does by default), {@code mse},
 * {@code dequantize} (to TYPE), {@code matvec} (11008 x 4096 NF4, block 64, double quantization, one
 * thread; TYPE and ELEMENTS unused); TYPE F32 (default) or BF16; ELEMENTS default 256 Ki (in L2); ROUNDS
 * default 60. Weights N(0, 0.02) from a fixed seed; block 64.
 */
public final class KernelAB {
    private static final int BLOCK_SIZE = 64;
    /** Each side's share of a round, in elements (or weights) processed: long enough to time, short enough to alternate often. */
    private static final long WORK_PER_ROUND = 1L << 22;
    private static final int MATVEC_ROWS = 11008;
    private static final int MATVEC_COLS = 4096;

    private static final List<String> OPERATIONS =
            List.of("quantize", "measured", "measured-dq", "mse", "dequantize", "matvec");

    private KernelAB() {}

    /** The integer, or -1 where the text is not a positive one. */
    private static int positive(String text) {
        try {
            int value = Integer.parseInt(text);
            return value > 0 ? value : -1;
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** One side's operation, ready to run; {@code size} elements or weights per call. */
    private record Side(MethodHandle call, long size) {}

    public static void main(String[] args) throws Throwable {
        String op = args.length > 2 ? args[2] : "";
        String type = args.length > 3 ? args[3] : "F32";
        int elements = args.length > 4 ? positive(args[4]) : 1 << 18;
        int rounds = args.length > 5 ? positive(args[5]) : 60;
        if (!OPERATIONS.contains(op) || !type.equals("F32") && !type.equals("BF16") || elements < 0 || rounds < 0) {
            System.err.println("usage: KernelAB CLASSPATH_A CLASSPATH_B " + String.join("|", OPERATIONS)
                    + " [F32|BF16] [ELEMENTS] [ROUNDS] (ELEMENTS and ROUNDS positive integers)");
            System.exit(2);
        }
        Side[] sides = new Side[2];
        try (Arena arena = Arena.ofShared()) {
            for (int s = 0; s < 2; s++) {
                sides[s] = prepare(loader(args[s]), op, type, elements, arena);
            }
            double[][] nanos = new double[2][rounds];
            double[] ratios = new double[rounds];
            int warmUp = Math.max(3, rounds / 5);
            for (int round = -warmUp; round < rounds; round++) {
                for (int i = 0; i < 2; i++) {
                    int s = (round & 1) == 0 ? i : 1 - i; // A first in even rounds, B first in odd ones
                    double perElement = time(sides[s]);
                    if (round >= 0) {
                        nanos[s][round] = perElement;
                    }
                }
                if (round >= 0) {
                    ratios[round] = nanos[1][round] / nanos[0][round];
                }
            }
            System.out.printf(Locale.ROOT, "%s %s: A %.3f, B %.3f ns per %s (medians); B/A %.3f, quartiles %.3f and %.3f%n",
                    op, op.equals("matvec") ? "" : type + " " + elements, quantile(nanos[0], 0.5),
                    quantile(nanos[1], 0.5), op.equals("matvec") ? "weight" : "element", quantile(ratios, 0.5),
                    quantile(ratios, 0.25), quantile(ratios, 0.75));
        }
    }

    private static ClassLoader loader(String classPath) throws Exception {
        String[] entries = classPath.split(":");
        URL[] urls = new URL[entries.length];
        for (int i = 0; i < entries.length; i++) {
            urls[i] = Path.of(entries[i]).toUri().toURL();
        }
        // The platform loader as parent, so that neither side sees the qnat-core shaded into this jar.
        return new URLClassLoader(urls, ClassLoader.getPlatformClassLoader());
    }

    private static double time(Side side) throws Throwable {
        long calls = Math.max(1, WORK_PER_ROUND / side.size());
        long start = System.nanoTime();
        for (long c = 0; c < calls; c++) {
            side.call().invoke();
        }
        return (System.nanoTime() - start) / (double) (calls * side.size());
    }

    private static Side prepare(ClassLoader loader, String op, String typeName, int elements, Arena arena)
            throws Throwable {
        MethodHandles.Lookup lookup = MethodHandles.publicLookup();
        if (op.equals("matvec")) {
            return matVec(loader, lookup);
        }
        Class<?> nf4 = loader.loadClass("dev.qnat.nf4.Nf4");
        Class<?> floatType = loader.loadClass("dev.qnat.nf4.FloatType");
        Class<?> scaleRule = loader.loadClass("dev.qnat.nf4.ScaleRule");
        Object type = floatType.getField(typeName).get(null);
        boolean f32 = typeName.equals("F32");
        MemorySegment values = weights(elements, f32, arena);
        MemorySegment codes = arena.allocate(elements / 2 + 1, 64);
        MemorySegment absmax = arena.allocate(4L * (elements / BLOCK_SIZE + 1), 64);
        MethodHandle quantize = lookup.findStatic(nf4, "quantize", MethodType.methodType(void.class,
                MemorySegment.class, floatType, int.class, MemorySegment.class, MemorySegment.class, scaleRule));
        Object rule = scaleRule.getField(op.equals("mse") ? "MSE" : "ABSMAX").get(null);
        MethodHandle quantizeCall = MethodHandles.insertArguments(quantize, 0, values, type, BLOCK_SIZE, codes,
                absmax, rule);
        return switch (op) {
            case "quantize", "mse" -> new Side(quantizeCall, elements);
            case "measured", "measured-dq" -> {
                Class<?> error = loader.loadClass("dev.qnat.nf4.QuantizationError");
                MethodHandle blocks = lookup.findStatic(nf4, "quantizeBlocks", MethodType.methodType(void.class,
                        MemorySegment.class, floatType, int.class, long.class, long.class, MemorySegment.class,
                        MemorySegment.class, error, MemorySegment.class));
                long blockCount = (elements + BLOCK_SIZE - 1) / BLOCK_SIZE;
                MemorySegment terms = op.equals("measured-dq") ? arena.allocate(12 * blockCount, 64) : null;
                yield new Side(MethodHandles.insertArguments(blocks, 0, values, type, BLOCK_SIZE, 0L, blockCount,
                        codes, absmax, error.getConstructor().newInstance(), terms), elements);
            }
            case "dequantize" -> {
                quantizeCall.invoke();
                MemorySegment out = arena.allocate(values.byteSize(), 64);
                MethodHandle dequantize = lookup.findStatic(nf4, "dequantize", MethodType.methodType(void.class,
                        MemorySegment.class, MemorySegment.class, int.class, MemorySegment.class, floatType));
                yield new Side(MethodHandles.insertArguments(dequantize, 0, codes, absmax, BLOCK_SIZE, out, type),
                        elements);
            }
            default -> throw new IllegalArgumentException("unknown operation " + op);
        };
    }

    private static Side matVec(ClassLoader loader, MethodHandles.Lookup lookup) throws Throwable {
        SplittableRandom random = new SplittableRandom(14);
        float[] w = new float[MATVEC_ROWS * MATVEC_COLS];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (random.nextGaussian() * 0.02);
        }
        float[] x = new float[MATVEC_COLS];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) random.nextGaussian();
        }
        Class<?> matrixClass = loader.loadClass("dev.qnat.nf4.Nf4Matrix");
        Object matrix = matrixClass.getMethod("quantize", float[].class, int.class, int.class, int.class, boolean.class)
                .invoke(null, w, MATVEC_ROWS, MATVEC_COLS, BLOCK_SIZE, true);
        MethodHandle matMul = lookup.findVirtual(matrixClass, "matMul",
                MethodType.methodType(void.class, float[].class, int.class, float[].class, Executor.class));
        return new Side(MethodHandles.insertArguments(matMul, 0, matrix, x, 1, new float[MATVEC_ROWS], null),
                (long) MATVEC_ROWS * MATVEC_COLS);
    }

    /** N(0, 0.02) weights as F32, or as BF16 (their top 16 bits). */
    private static MemorySegment weights(int elements, boolean f32, Arena arena) {
        MemorySegment values = arena.allocate((long) elements * (f32 ? 4 : 2), 64);
        SplittableRandom random = new SplittableRandom(1);
        for (int i = 0; i < elements; i++) {
            float v = (float) (random.nextGaussian() * 0.02);
            if (f32) {
                values.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
            } else {
                values.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) (Float.floatToRawIntBits(v) >>> 16));
            }
        }
        return values;
    }

    private static double quantile(double[] values, double p) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[(int) Math.round(p * (sorted.length - 1))];
    }
}
