package dev.qnat;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;

/** Facts about this build of qnat. */
public final class Qnat {
    /**
     * The version, as in {@code qnat --version} and the {@code producer} metadata of written files: the
     * pom's, written into {@code qnat.properties} by the build.
     */
    public static final String VERSION = buildProperty("version");

    private Qnat() {}

    private static String buildProperty(String key) {
        Properties properties = new Properties();
        try (InputStream in = Qnat.class.getResourceAsStream("qnat.properties")) {
            if (in == null) {
                throw new IllegalStateException("qnat.properties is missing beside " + Qnat.class.getName());
            }
            properties.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return properties.getProperty(key);
    }
}
