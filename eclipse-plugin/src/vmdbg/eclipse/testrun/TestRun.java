package vmdbg.eclipse.testrun;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import org.eclipse.debug.core.ILaunchConfiguration;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

/**
 * The tests of one "vmdbg Tests" launch, filled from `vmdbg test --format
 * json` events as they arrive; a re-run of one test updates its entry here.
 * {@link #latest()} is the run the view shows.
 */
public final class TestRun {
    private static final List<Consumer<TestRun>> LISTENERS = new CopyOnWriteArrayList<>();
    private static volatile TestRun latest;

    public final ILaunchConfiguration config;
    private final Map<String, TestResult> tests = new LinkedHashMap<>();
    private volatile int declared = -1;
    private volatile String summary = "starting";
    private volatile boolean running = true;
    private volatile String error;
    private volatile Object junitSession;
    private volatile String junitError;
    private volatile CountDownLatch done = new CountDownLatch(1);

    TestRun(ILaunchConfiguration config) {
        this.config = config;
    }

    public static TestRun latest() {
        return latest;
    }

    /** Called (on any thread) whenever a run starts or changes. */
    public static void addListener(Consumer<TestRun> l) {
        LISTENERS.add(l);
    }

    public static void removeListener(Consumer<TestRun> l) {
        LISTENERS.remove(l);
    }

    static TestRun begin(ILaunchConfiguration config) {
        TestRun run = new TestRun(config);
        latest = run;
        run.changed();
        return run;
    }

    /** A re-run of some tests of this run: they are reported into it again. */
    void restart() {
        done = new CountDownLatch(1);
        running = true;
        error = null;
        summary = "re-running";
        changed();
    }

    void changed() {
        for (Consumer<TestRun> l : LISTENERS) l.accept(this);
    }

    /** One line of `vmdbg test --format json` stdout. */
    void event(String line) {
        JsonObject e;
        try {
            JsonElement parsed = JsonParser.parseString(line);
            if (!parsed.isJsonObject()) return;
            e = parsed.getAsJsonObject();
        } catch (RuntimeException ex) {
            return; // not an event (the binary's own output never reaches stdout here, but be lenient)
        }
        String type = str(e, "type"), event = str(e, "event");
        if ("suite".equals(type) && "started".equals(event)) {
            if (declared < 0) declared = e.has("test_count") ? e.get("test_count").getAsInt() : -1;
        } else if ("test".equals(type)) {
            String name = str(e, "name");
            TestResult t;
            synchronized (tests) {
                t = tests.computeIfAbsent(name, TestResult::new);
            }
            t.status = "started".equals(event) ? "running" : event;
            if (!"started".equals(event)) {
                t.seconds = e.has("exec_time") && !e.get("exec_time").isJsonNull() ? e.get("exec_time").getAsDouble() : 0;
                t.stdout = str(e, "stdout");
                t.stderr = str(e, "stderr");
                t.console = str(e, "console");
                t.message = str(e, "message");
            }
        } else if ("suite".equals(type)) {
            summary = String.format("%s: %d passed, %d failed, %d ignored, %d filtered out (%.1f s)",
                "ok".equals(event) ? "passed" : "failed", num(e, "passed"), num(e, "failed"), num(e, "ignored"),
                num(e, "filtered_out"), e.has("exec_time") ? e.get("exec_time").getAsDouble() : 0.0);
        }
        changed();
    }

    void finished(int exitCode, String stderrTail) {
        running = false;
        if (exitCode != 0 && exitCode != 101) {
            error = "vmdbg test exited with status " + exitCode + (stderrTail.isBlank() ? "" : ": " + stderrTail.strip());
            summary = error;
        }
        done.countDown();
        changed();
    }

    /** Imports vmdbg's JUnit report of the run (or re-run) that just ended into Eclipse's JUnit model. */
    void importJUnit(java.io.File xml) {
        try {
            junitSession = JUnitImport.importReport(xml);
            junitError = null;
        } catch (org.eclipse.core.runtime.CoreException | RuntimeException e) {
            junitSession = null;
            junitError = "the JUnit report " + xml + " was not imported: " + e.getMessage();
        }
    }

    /**
     * The last report imported into Eclipse's JUnit model (an
     * org.eclipse.jdt.junit.model.ITestRunSession), or null where JDT's
     * JUnit core is absent or the import failed ({@link #junitError()}).
     */
    public Object junitSession() {
        return junitSession;
    }

    public String junitError() {
        return junitError;
    }

    public List<TestResult> tests() {
        synchronized (tests) {
            return new ArrayList<>(tests.values());
        }
    }

    public TestResult test(String name) {
        synchronized (tests) {
            return tests.get(name);
        }
    }

    public long count(String status) {
        return tests().stream().filter(t -> status.equals(t.status)).count();
    }

    /** The summary line: counts over the whole run (re-runs included), then vmdbg's last suite line. */
    public String summary() {
        String counts = String.format("%d passed, %d failed, %d ignored", count("ok"), count("failed"), count("ignored"));
        if (running) return counts + (declared >= 0 ? " of " + declared : "") + "; running";
        return counts + " — vmdbg: " + summary + (junitError == null ? "" : "; " + junitError);
    }

    public boolean isRunning() {
        return running;
    }

    /** Why vmdbg test itself failed (not a test failure), or null. */
    public String error() {
        return error;
    }

    public boolean await(long ms) throws InterruptedException {
        return done.await(ms, TimeUnit.MILLISECONDS);
    }

    private static String str(JsonObject e, String key) {
        return e.has(key) && !e.get(key).isJsonNull() ? e.get(key).getAsString() : "";
    }

    private static int num(JsonObject e, String key) {
        return e.has(key) && !e.get(key).isJsonNull() ? e.get(key).getAsInt() : 0;
    }
}
