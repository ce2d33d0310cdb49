package dev.qnat.cli;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import java.util.Locale;

/** The little JSON the commands print with --json. */
final class Json {
    private Json() {}

    static String string(String s) {
        return "\"" + new String(JsonStringEncoder.getInstance().quoteAsString(s)) + "\"";
    }

    static String number(double value) {
        return Double.isFinite(value) ? String.format(Locale.ROOT, "%.6g", value) : "null";
    }
}
