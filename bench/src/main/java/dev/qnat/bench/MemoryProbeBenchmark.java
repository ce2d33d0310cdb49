package dev.qnat.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The one-core memory probe: what one thread needs, per element, to read 4 bytes and write half a
 * byte over 64 Mi elements (out of cache), as quantizing F32 to NF4 codes must; the floor under the
 * codec's out-of-cache figures. Scores are ns per element.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsPrepend = {"-Xms1g", "-Xmx1g", "-XX:+AlwaysPreTouch"})
public class MemoryProbeBenchmark {
    private static final int ELEMENTS = 64 << 20;
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;

    private Arena arena;
    private MemorySegment input;
    private MemorySegment output;

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        input = arena.allocate(4L * ELEMENTS, 64);
        output = arena.allocate(ELEMENTS / 2, 64);
        input.fill((byte) 1);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /** Reads every float and writes one byte per two elements (a lane of the sum, so nothing is dead). */
    @Benchmark
    @OperationsPerInvocation(ELEMENTS)
    public MemorySegment readFourWriteHalf() {
        int lanes = FLOATS.length();
        for (long i = 0; i < ELEMENTS; i += 2L * lanes) {
            FloatVector a = FloatVector.fromMemorySegment(FLOATS, input, 4 * i, ByteOrder.LITTLE_ENDIAN);
            FloatVector b = FloatVector.fromMemorySegment(FLOATS, input, 4 * (i + lanes), ByteOrder.LITTLE_ENDIAN);
            output.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i / 2,
                    Double.doubleToRawLongBits(a.add(b).reinterpretAsDoubles().lane(0)));
            if (lanes > 8) {
                output.set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i / 2 + 8,
                        Double.doubleToRawLongBits(a.sub(b).reinterpretAsDoubles().lane(0)));
            }
        }
        return output;
    }
}
