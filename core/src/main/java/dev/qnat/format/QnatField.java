package dev.qnat.format;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * One field of a QNAT v2 fixed header, tensor entry or section descriptor (src/spec/qnat-v2.md): its
 * name as the spec and the reader's error messages spell it, its offset from the start of its
 * structure, and its type. The writer, the reader and the tests take every field from here.
 *
 * @param size bytes the field takes
 */
record QnatField(String name, int offset, Type type, int size) {
    enum Type { U8, U32, U64, F32, BYTES }

    private static final ValueLayout.OfInt U32_LAYOUT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64_LAYOUT = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32_LAYOUT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    // ---- fixed header, at offset 0 of the file --------------------------------------------------------

    static final QnatField MAGIC = bytes("magic", 0, 4);
    static final QnatField VERSION = of("version", 4, Type.U32);
    static final QnatField FLAGS = of("flags", 8, Type.U32);
    static final QnatField HEADER_CRC32C = of("header_crc32c", 12, Type.U32);
    static final QnatField HEADER_LENGTH = of("header_length", 16, Type.U64);
    static final QnatField FILE_LENGTH = of("file_length", 24, Type.U64);
    static final QnatField METADATA_OFFSET = of("metadata_offset", 32, Type.U64);
    static final QnatField METADATA_LENGTH = of("metadata_length", 40, Type.U64);
    static final QnatField TABLE_OFFSET = of("table_offset", 48, Type.U64);
    static final QnatField TABLE_LENGTH = of("table_length", 56, Type.U64);
    static final QnatField INDEX_OFFSET = of("index_offset", 64, Type.U64);
    static final QnatField INDEX_LENGTH = of("index_length", 72, Type.U64);
    static final QnatField STRINGS_OFFSET = of("strings_offset", 80, Type.U64);
    static final QnatField STRINGS_LENGTH = of("strings_length", 88, Type.U64);
    static final QnatField TENSOR_COUNT = of("tensor_count", 96, Type.U32);
    static final QnatField ENTRY_SIZE = of("entry_size", 100, Type.U32);
    static final QnatField HEADER_RESERVED = bytes("reserved", 104, 24);
    /** The fixed header's fields in file order; together they fill {@link QnatLayout#FIXED_HEADER_SIZE} bytes. */
    static final List<QnatField> HEADER = List.of(MAGIC, VERSION, FLAGS, HEADER_CRC32C, HEADER_LENGTH, FILE_LENGTH,
            METADATA_OFFSET, METADATA_LENGTH, TABLE_OFFSET, TABLE_LENGTH, INDEX_OFFSET, INDEX_LENGTH, STRINGS_OFFSET,
            STRINGS_LENGTH, TENSOR_COUNT, ENTRY_SIZE, HEADER_RESERVED);

    // ---- tensor entry, at offset 0 of the entry --------------------------------------------------------

    static final QnatField NAME_OFFSET = of("name_offset", 0, Type.U64);
    static final QnatField NAME_LENGTH = of("name_length", 8, Type.U32);
    static final QnatField RANK = of("rank", 12, Type.U32);
    static final QnatField DIMS_OFFSET = of("dims_offset", 16, Type.U64);
    static final QnatField ELEMENT_COUNT = of("element_count", 24, Type.U64);
    static final QnatField DTYPE = of("dtype", 32, Type.U8);
    static final QnatField ENCODING = of("encoding", 33, Type.U8);
    static final QnatField SCALES = of("scales", 34, Type.U8);
    static final QnatField ENTRY_RESERVED_BYTE = bytes("reserved", 35, 1);
    static final QnatField BLOCK_SIZE = of("block_size", 36, Type.U32);
    static final QnatField NESTED_BLOCK_SIZE = of("nested_block_size", 40, Type.U32);
    static final QnatField DQ_OFFSET = of("dq_offset", 44, Type.F32);
    /** Where section 0's descriptor starts; section {@code s}'s follows {@code s} descriptors later. */
    static final int FIRST_SECTION = 48;
    static final QnatField ENTRY_RESERVED = bytes("reserved", 144, 16);

    // ---- section descriptor, at offset 0 of the descriptor ------------------------------------------

    static final QnatField SECTION_OFFSET = of("offset", 0, Type.U64);
    static final QnatField SECTION_LENGTH = of("length", 8, Type.U64);
    static final QnatField SECTION_CRC32C = of("crc32c", 16, Type.U32);
    static final QnatField SECTION_RESERVED = bytes("reserved", 20, 4);
    static final int SECTION_DESCRIPTOR_SIZE = 24;
    private static final List<QnatField> SECTION_DESCRIPTOR = List.of(SECTION_OFFSET, SECTION_LENGTH, SECTION_CRC32C,
            SECTION_RESERVED);

    /** A tensor entry's fields in entry order, each section's named "section S FIELD"; they fill the 160 bytes. */
    static final List<QnatField> ENTRY = entryFields();

    private static QnatField of(String name, int offset, Type type) {
        return new QnatField(name, offset, type, switch (type) {
            case U8 -> 1;
            case U32, F32 -> 4;
            case U64 -> 8;
            case BYTES -> throw new IllegalArgumentException("a field of bytes has its own size");
        });
    }

    private static QnatField bytes(String name, int offset, int size) {
        return new QnatField(name, offset, Type.BYTES, size);
    }

    /** Offset of section {@code section}'s descriptor within a tensor entry. */
    static int sectionDescriptor(int section) {
        return FIRST_SECTION + SECTION_DESCRIPTOR_SIZE * section;
    }

    /** A section descriptor's field as a field of the tensor entry, named "section S FIELD". */
    static QnatField ofSection(int section, QnatField field) {
        return new QnatField("section " + section + " " + field.name, sectionDescriptor(section) + field.offset,
                field.type, field.size);
    }

    private static List<QnatField> entryFields() {
        List<QnatField> fields = new ArrayList<>(List.of(NAME_OFFSET, NAME_LENGTH, RANK, DIMS_OFFSET,
                ELEMENT_COUNT, DTYPE, ENCODING, SCALES, ENTRY_RESERVED_BYTE, BLOCK_SIZE, NESTED_BLOCK_SIZE, DQ_OFFSET));
        for (int s = 0; s < QnatLayout.SECTIONS; s++) {
            for (QnatField field : SECTION_DESCRIPTOR) {
                fields.add(ofSection(s, field));
            }
        }
        fields.add(ENTRY_RESERVED);
        return List.copyOf(fields);
    }

    /** This field's offset in a structure that starts at {@code base}. */
    long at(long base) {
        return base + offset;
    }

    /** Writes an integer field (U8, U32 or U64) of the structure at {@code base}. */
    void put(MemorySegment file, long base, long value) {
        switch (type) {
            case U8 -> file.set(ValueLayout.JAVA_BYTE, at(base), (byte) value);
            case U32 -> file.set(U32_LAYOUT, at(base), (int) value);
            case U64 -> file.set(U64_LAYOUT, at(base), value);
            default -> throw new IllegalStateException(name + " is not an integer field");
        }
    }

    /** Writes this F32 field of the structure at {@code base}. */
    void putFloat(MemorySegment file, long base, float value) {
        if (type != Type.F32) {
            throw new IllegalStateException(name + " is not an f32 field");
        }
        file.set(F32_LAYOUT, at(base), value);
    }
}
