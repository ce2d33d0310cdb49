package dev.qnat.format;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

/** The field tables follow one another without gaps or overlaps and fill their structures, as the spec's tables do. */
class QnatFieldTest {
    private static void assertContiguous(List<QnatField> fields, int size) {
        int next = 0;
        for (QnatField field : fields) {
            assertEquals(next, field.offset(), field.name() + " starts where the field before it ends");
            next += field.size();
        }
        assertEquals(size, next, "the fields fill the structure");
    }

    @Test
    void theFixedHeaderFieldsFillItsBytes() {
        assertContiguous(QnatField.HEADER, QnatLayout.FIXED_HEADER_SIZE);
    }

    @Test
    void theEntryFieldsFillAnEntry() {
        assertContiguous(QnatField.ENTRY, QnatLayout.ENTRY_SIZE);
    }
}
