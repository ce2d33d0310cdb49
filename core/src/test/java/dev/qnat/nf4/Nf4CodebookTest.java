package dev.qnat.nf4;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class Nf4CodebookTest {
    /** The decision thresholds of bitsandbytes' CUDA kernel (dQuantizeNF4), as its source writes them. */
    private static final String[] BITSANDBYTES_THRESHOLDS = {
        "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
        "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
        "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
        "0.5016634166240692", "0.6427869200706482", "0.8614784181118011",
    };

    @Test
    void levelsAreTheBitsandbytesValues() {
        String[] decimals = {"-1.0", "-0.6961928009986877", "-0.5250730514526367", "-0.39491748809814453",
            "-0.28444138169288635", "-0.18477343022823334", "-0.09105003625154495", "0.0", "0.07958029955625534",
            "0.16093020141124725", "0.24611230194568634", "0.33791524171829224", "0.44070982933044434",
            "0.5626170039176941", "0.7229568362236023", "1.0"};
        for (int code = 0; code < 16; code++) {
            assertEquals(Float.parseFloat(decimals[code]), Nf4Codebook.level(code), "level " + code);
        }
        assertEquals(0f, Nf4Codebook.level(Nf4Codebook.ZERO_CODE));
    }

    @Test
    void thresholdsAreTheRoundedMidpointsOfBitsandbytes() {
        List<Integer> oneUlpApartWhenParsedAsFloat = new ArrayList<>();
        for (int i = 0; i < 15; i++) {
            double exactMidpoint = ((double) Nf4Codebook.level(i) + Nf4Codebook.level(i + 1)) / 2;
            double bitsandbytes = Double.parseDouble(BITSANDBYTES_THRESHOLDS[i]);
            assertEquals(exactMidpoint, bitsandbytes, "bitsandbytes' decimal is the exact midpoint " + i);
            assertEquals((float) exactMidpoint, Nf4Codebook.midpoint(i), "midpoint " + i);
            assertTrue(Nf4Codebook.level(i) < Nf4Codebook.midpoint(i) && Nf4Codebook.midpoint(i) < Nf4Codebook.level(i + 1));
            // A C "...f" literal rounds the decimal straight to float: where the exact midpoint is a float
            // tie, the decimal's last digit can land it one ulp from ties-to-even (see nf4-codec.md).
            float direct = Float.parseFloat(BITSANDBYTES_THRESHOLDS[i]);
            if (direct != Nf4Codebook.midpoint(i)) {
                assertEquals(Math.ulp(direct), Math.abs(direct - Nf4Codebook.midpoint(i)), "threshold " + i);
                oneUlpApartWhenParsedAsFloat.add(i);
            }
        }
        assertEquals(List.of(0, 8, 12, 14), oneUlpApartWhenParsedAsFloat);
    }

    @Test
    void encodeCountsThresholdsStrictlyBelow() {
        for (int i = 0; i < 15; i++) {
            float m = Nf4Codebook.midpoint(i);
            assertEquals(i, Nf4Codebook.encode(m), "an exact threshold goes to the lower code");
            assertEquals(i + 1, Nf4Codebook.encode(Math.nextUp(m)));
            assertEquals(i, Nf4Codebook.encode(Math.nextDown(m)));
        }
        for (int code = 0; code < 16; code++) {
            assertEquals(code, Nf4Codebook.encode(Nf4Codebook.level(code)));
        }
        assertEquals(0, Nf4Codebook.encode(Float.NaN));
        assertEquals(0, Nf4Codebook.encode(Float.NEGATIVE_INFINITY));
        assertEquals(15, Nf4Codebook.encode(Float.POSITIVE_INFINITY));
        assertEquals(7, Nf4Codebook.encode(-0f));
    }

    /** The codec spec's rule, written out: the number of thresholds strictly below v. */
    private static int thresholdsBelow(float v) {
        int code = 0;
        for (int i = 0; i < 15; i++) {
            if (v > Nf4Codebook.midpoint(i)) {
                code++;
            }
        }
        return code;
    }

    @Test
    void encodeIsTheCountNearEveryThresholdAndCellEdgeAndAnywhere() {
        List<Float> centres = new ArrayList<>();
        for (int i = 0; i < 15; i++) {
            centres.add(Nf4Codebook.midpoint(i));
        }
        for (int edge = 0; edge <= 32; edge++) {
            centres.add((edge - 16) / 16f); // where encode's cells (1/16 wide) meet
        }
        for (float centre : centres) {
            int bits = Float.floatToRawIntBits(centre);
            for (int step = -70_000; step <= 70_000; step++) {
                float v = Float.intBitsToFloat(bits + step);
                assertEquals(thresholdsBelow(v), Nf4Codebook.encode(v), () -> "v = " + v);
            }
        }
        long seed = TestData.seed();
        SplittableRandom random = new SplittableRandom(seed);
        for (int n = 0; n < 2_000_000; n++) {
            float v = n % 2 == 0 ? Float.intBitsToFloat(random.nextInt()) : (float) random.nextDouble(-1.25, 1.25);
            if (Nf4Codebook.encode(v) != thresholdsBelow(v)) {
                throw new AssertionError("seed " + seed + ": v = " + v + " (bits " + Integer.toHexString(
                        Float.floatToRawIntBits(v)) + ") gets " + Nf4Codebook.encode(v) + ", the count is "
                        + thresholdsBelow(v));
            }
        }
    }
}
