package vmdbg.eclipse.tests;

import java.util.Objects;

/** Assertions that say what was expected and what came. */
final class Check {
    private Check() {
    }

    static void equal(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) throw new AssertionError(what + ": expected " + expected + ", got " + actual);
    }

    static void that(boolean condition, String what) {
        if (!condition) throw new AssertionError(what);
    }
}
