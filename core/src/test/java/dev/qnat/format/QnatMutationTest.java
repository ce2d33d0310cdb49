package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Damaged v2 files: the reader answers each with FormatException and nothing else. */
class QnatMutationTest {
    @TempDir
    Path dir;
    byte[] valid;
    long headerLength;

    @BeforeEach
    void writeValidFile() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            QnatRoundTripTest.Generated g;
            SplittableRandom random = new SplittableRandom(11);
            do {
                g = QnatRoundTripTest.generate(random, arena);
            } while (g.tensors.size() < 4);
            Path file = dir.resolve("valid.qnat");
            QnatWriter.write(file, Map.of("model_name", "m", "producer", "test"), g.tensors);
            valid = Files.readAllBytes(file);
        }
        headerLength = buffer(valid).getLong(QnatField.HEADER_LENGTH.offset());
    }

    private static ByteBuffer buffer(byte[] bytes) {
        return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Opens the bytes as a file and reads every tensor; returns normally only if all of that worked. */
    private void openAndReadAll(byte[] bytes, String what) throws Exception {
        Path file = dir.resolve("mutant.qnat");
        Files.write(file, bytes);
        try (QnatFile qnat = QnatFile.open(file)) {
            for (QnatTensor t : qnat.tensors()) {
                t.data();
                if (t.encoding() == Encoding.NF4) {
                    t.toFloats();
                }
            }
        } catch (FormatException expected) {
            assertTrue(expected.getMessage().startsWith(file.toString()), expected.getMessage());
            throw expected;
        } catch (Exception | Error e) {
            fail(what + ": " + e, e);
        }
    }

    private void assertRefused(byte[] bytes, String what) {
        assertThrows(FormatException.class, () -> openAndReadAll(bytes, what), what);
    }

    /** Re-seals the header CRC so that field checks, not the CRC, are what a mutation meets. */
    private byte[] resealed(byte[] bytes) {
        ByteBuffer b = buffer(bytes);
        long length = Math.min(b.getLong(QnatField.HEADER_LENGTH.offset()), bytes.length);
        if (length < QnatField.HEADER_LENGTH.offset()) {
            return bytes;
        }
        b.putInt(QnatField.HEADER_CRC32C.offset(), QnatLayout.headerCrc(MemorySegment.ofArray(bytes), length));
        return bytes;
    }

    @Test
    void theValidFileReads() throws Exception {
        openAndReadAll(valid, "valid");
    }

    @Test
    void everyTruncationIsRefused() {
        for (int length = 0; length < valid.length; length += length < headerLength + 256 ? 1 : 97) {
            assertRefused(java.util.Arrays.copyOf(valid, length), "truncated to " + length);
        }
    }

    @Test
    void everyFlippedHeaderBitIsRefused() {
        for (long bit = 0; bit < headerLength * 8; bit++) {
            byte[] bytes = valid.clone();
            bytes[(int) (bit / 8)] ^= (byte) (1 << (bit % 8));
            assertRefused(bytes, "header bit " + bit + " flipped");
        }
    }

    @Test
    void aFlippedDataBitIsRefusedOnFirstReadAndByVerify() throws Exception {
        SplittableRandom random = new SplittableRandom(12);
        for (int trial = 0; trial < 40; trial++) {
            byte[] bytes = valid.clone();
            long bit = headerLength * 8 + random.nextLong(((long) bytes.length - headerLength) * 8);
            bytes[(int) (bit / 8)] ^= (byte) (1 << (bit % 8));
            Path file = dir.resolve("flipped.qnat");
            Files.write(file, bytes);
            boolean inSomeSection;
            try (QnatFile qnat = QnatFile.open(file)) {
                inSomeSection = qnat.tensors().stream().anyMatch(t -> covers(qnat, t, bit / 8));
                if (inSomeSection) {
                    assertThrows(FormatException.class, qnat::verify, "bit " + bit);
                    assertThrows(FormatException.class, () -> {
                        for (QnatTensor t : qnat.tensors()) {
                            t.data();
                        }
                    });
                } else {
                    qnat.verify(); // alignment padding: nothing reads it
                }
            }
        }
    }

    private static boolean covers(QnatFile qnat, QnatTensor tensor, long offset) {
        return tensor.sectionRanges().stream().anyMatch(r -> offset >= r[0] && offset < r[0] + r[1]);
    }

    @Test
    void fieldsSetHugeOrWrongAreRefusedEvenWithAResealedCrc() {
        long[] values = {0xFFFFFFFFL, 1L << 62, Long.MAX_VALUE, -1L, valid.length + 1L, 7, 0};
        for (QnatField field : QnatField.HEADER) {
            // Before header_length: magic, version, flags and the CRC itself, which the CRC alone protects.
            // entry_size: a larger value with the same table is caught by table_length, tested below.
            if (field.offset() < QnatField.HEADER_LENGTH.offset() || field == QnatField.ENTRY_SIZE) {
                continue;
            }
            for (int word = field.offset(); word < field.offset() + field.size(); word += 4) {
                boolean wide = field.type() == QnatField.Type.U64 && word == field.offset();
                for (long value : values) {
                    byte[] bytes = valid.clone();
                    if (!overwrite(buffer(bytes), word, wide, value)) {
                        continue;
                    }
                    assertRefused(resealed(bytes), "header field " + field.name() + " (at " + word + ") set to " + value);
                }
            }
        }
    }

    @Test
    void entryFieldsSetHugeAreRefused() {
        ByteBuffer b = buffer(valid);
        long table = b.getLong(QnatField.TABLE_OFFSET.offset());
        int count = b.getInt(QnatField.TENSOR_COUNT.offset());
        // Values no field can take; dq_offset is a plain number the header CRC alone protects.
        long[] values = {0xFFFFFFFFL, Long.MAX_VALUE, valid.length + 64L};
        for (int t = 0; t < count; t++) {
            long entry = table + (long) QnatLayout.ENTRY_SIZE * t;
            for (QnatField field : QnatField.ENTRY) {
                // The bytes after dtype (encoding, scales, reserved) lie in the word that dtype's trials overwrite.
                if (field == QnatField.DQ_OFFSET || field.offset() % 4 != 0) {
                    continue;
                }
                for (int word = field.offset(); word < field.offset() + field.size(); word += 4) {
                    boolean wide = field.type() == QnatField.Type.U64 && word == field.offset();
                    for (long value : values) {
                        byte[] bytes = valid.clone();
                        if (!overwrite(buffer(bytes), (int) (entry + word), wide, value)) {
                            continue;
                        }
                        String what = "tensor " + t + " " + field.name() + " (at " + word + ") = " + value;
                        try {
                            openAndReadAll(resealed(bytes), what);
                        } catch (FormatException expected) {
                            continue;
                        } catch (Exception e) {
                            fail(e);
                        }
                        fail(what + " was accepted");
                    }
                }
            }
        }
    }

    /** Puts {@code value} as a u64 ({@code wide}) or a u32 at {@code at}; false if it is there already. */
    private static boolean overwrite(ByteBuffer bytes, int at, boolean wide, long value) {
        if (wide ? bytes.getLong(at) == value : bytes.getInt(at) == (int) value) {
            return false;
        }
        if (wide) {
            bytes.putLong(at, value);
        } else {
            bytes.putInt(at, (int) value);
        }
        return true;
    }

    @Test
    void overlappingSectionsAreRefused() throws Exception {
        ByteBuffer b = buffer(valid);
        long table = b.getLong(QnatField.TABLE_OFFSET.offset());
        // Point tensor 1's data section at tensor 0's; same length is not required for the overlap check to fire,
        // so keep tensor 1's own length and crc and expect the overlap (or a bounds) error.
        byte[] bytes = valid.clone();
        ByteBuffer m = buffer(bytes);
        QnatField dataOffset = QnatField.ofSection(QnatLayout.DATA, QnatField.SECTION_OFFSET);
        long firstData = m.getLong((int) dataOffset.at(table));
        m.putLong((int) dataOffset.at(table + QnatLayout.ENTRY_SIZE), firstData);
        FormatException e = assertThrows(FormatException.class, () -> openAndReadAll(resealed(bytes), "overlap"));
        assertTrue(e.getMessage().contains("overlaps") || e.getMessage().contains("must start"), e.getMessage());
    }

    @Test
    void duplicateNamesAreRefused() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment data = arena.allocate(8);
            Path file = dir.resolve("dup.qnat");
            var e = assertThrows(IllegalArgumentException.class, () -> QnatWriter.write(file, Map.of(),
                    List.of(TensorToWrite.raw("same", new long[] {2}, DType.F32, data),
                            TensorToWrite.raw("same", new long[] {2}, DType.F32, data))));
            assertTrue(e.getMessage().contains("'same'"), e.getMessage());
        }
        // A file whose two names agree: write "aa" and "ab", then turn "ab" into "aa" in the strings part.
        try (Arena arena = Arena.ofShared()) {
            MemorySegment data = arena.allocate(8);
            Path file = dir.resolve("two.qnat");
            QnatWriter.write(file, Map.of(), List.of(TensorToWrite.raw("aa", new long[] {2}, DType.F32, data),
                    TensorToWrite.raw("ab", new long[] {2}, DType.F32, data)));
            byte[] bytes = Files.readAllBytes(file);
            long strings = buffer(bytes).getLong(QnatField.STRINGS_OFFSET.offset());
            int at = (int) strings;
            while (!(bytes[at] == 'a' && bytes[at + 1] == 'b')) {
                at++;
            }
            bytes[at + 1] = 'a';
            FormatException e = assertThrows(FormatException.class, () -> openAndReadAll(resealed(bytes), "dup"));
            assertTrue(e.getMessage().contains("'aa' appears twice"), e.getMessage());
        }
    }
}
