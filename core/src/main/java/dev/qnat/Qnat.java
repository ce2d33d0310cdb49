package dev.qnat;

/** Facts about this build of qnat. */
public final class Qnat {
    /** The version, as in {@code qnat --version} and the {@code producer} metadata of written files. */
    public static final String VERSION = "0.1.0";

    private Qnat() {}
}
