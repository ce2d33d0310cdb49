package dev.qnat.format;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Test-only: writes QNAT v1 exactly as qlora-rs 1.0.5's {@code export_native} does (the seed,
 * ../shared/seed), its wrong data offsets included: the offsets assume a 32-byte fixed header and
 * 28 bytes of metadata whatever the strings are.
 */
final class SeedV1Writer {
    /** A QuantizedTensor of the crate: packed codes, f32 scales, optional parts. */
    record Tensor(String name, long[] shape, int blockSize, byte[] data, float[] scales, float[] zeroPoints,
                  byte[] scalesQuantized, float[] scalesScales) {}

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    static byte[] write(List<Tensor> tensors, String modelName, String modelType, int computeDtype) {
        SeedV1Writer w = new SeedV1Writer();
        w.bytes("QNAT".getBytes(StandardCharsets.US_ASCII));
        w.u32(1);
        w.u32(0);
        w.u64(0);
        w.u32(tensors.size());
        w.u32(0);
        w.string(modelName);
        w.string(modelType);
        w.out.write(computeDtype);
        long current = headerSizeAsTheSeedComputesIt(tensors);
        long[] offsets = new long[tensors.size()];
        for (int i = 0; i < tensors.size(); i++) {
            offsets[i] = current;
            current += dataSize(tensors.get(i));
        }
        for (int i = 0; i < tensors.size(); i++) {
            Tensor t = tensors.get(i);
            w.string(t.name());
            w.u32(t.shape().length);
            for (long dim : t.shape()) {
                w.u64(dim);
            }
            w.u32(t.blockSize());
            w.u64(offsets[i]);
            w.u32(t.scales().length);
        }
        for (Tensor t : tensors) {
            w.bytes(t.data());
            for (float s : t.scales()) {
                w.f32(s);
            }
            if (t.zeroPoints() != null) {
                for (float z : t.zeroPoints()) {
                    w.f32(z);
                }
            }
            if (t.scalesQuantized() != null) {
                w.bytes(t.scalesQuantized());
            }
            if (t.scalesScales() != null) {
                for (float s : t.scalesScales()) {
                    w.f32(s);
                }
            }
        }
        return w.out.toByteArray();
    }

    // calculate_header_size: 32 + (4 + 11 + 4 + 8 + 1) + per tensor (4 + name.len() + 4 + 8 * rank + 4 + 8 + 4).
    private static long headerSizeAsTheSeedComputesIt(List<Tensor> tensors) {
        long size = 32 + 4 + 11 + 4 + 8 + 1;
        for (Tensor t : tensors) {
            size += 4 + t.name().getBytes(StandardCharsets.UTF_8).length + 4 + 8L * t.shape().length + 4 + 8 + 4;
        }
        return size;
    }

    private static long dataSize(Tensor t) {
        long size = t.data().length + 4L * t.scales().length;
        if (t.zeroPoints() != null) {
            size += 4L * t.zeroPoints().length;
        }
        if (t.scalesQuantized() != null) {
            size += t.scalesQuantized().length;
        }
        if (t.scalesScales() != null) {
            size += 4L * t.scalesScales().length;
        }
        return size;
    }

    private void string(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        u32(b.length);
        bytes(b);
    }

    private void bytes(byte[] b) {
        out.writeBytes(b);
    }

    private void u32(int v) {
        bytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
    }

    private void u64(long v) {
        bytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
    }

    private void f32(float v) {
        bytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(v).array());
    }
}
