package vmdbg.eclipse.tests;

/**
 * Waiting on state, never on time: a condition polled until it holds, with
 * a deadline only as the bound of a failure. The deadlines are generous
 * because the suite runs on a loaded 2-core machine; a pass never waits
 * longer than the state takes to arrive.
 */
final class Wait {
    /** How often a condition is looked at again. */
    private static final long POLL_MS = 50;

    private Wait() {
    }

    interface Condition {
        boolean holds() throws Exception;
    }

    interface Probe<T> {
        /** The value once it is there, null while it is not. */
        T get() throws Exception;
    }

    interface Seen {
        /** What is there now, for the failure message. */
        String describe() throws Exception;
    }

    /** Returns once `condition` holds; fails naming `what` (and what was seen) when it still does not after `timeoutMs`. */
    static void until(String what, long timeoutMs, Condition condition, Seen seen) throws Exception {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        while (!condition.holds()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError(what + " not within " + timeoutMs / 1000 + " s" + (seen == null ? "" : "; seen: " + seen.describe()));
            }
            Thread.sleep(POLL_MS);
        }
    }

    static void until(String what, long timeoutMs, Condition condition) throws Exception {
        until(what, timeoutMs, condition, null);
    }

    /** The probe's first non-null value; fails naming `what` when there is none after `timeoutMs`. */
    static <T> T value(String what, long timeoutMs, Probe<T> probe) throws Exception {
        Object[] found = new Object[1];
        until(what, timeoutMs, () -> (found[0] = probe.get()) != null);
        @SuppressWarnings("unchecked")
        T t = (T) found[0];
        return t;
    }
}
