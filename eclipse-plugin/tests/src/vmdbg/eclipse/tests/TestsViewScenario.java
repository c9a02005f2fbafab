package vmdbg.eclipse.tests;

import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.debug.core.ILaunchManager;

import org.eclipse.jdt.junit.model.ITestCaseElement;
import org.eclipse.jdt.junit.model.ITestElement;
import org.eclipse.jdt.junit.model.ITestElementContainer;
import org.eclipse.jdt.junit.model.ITestRunSession;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.model.VmdbgStackFrame;
import vmdbg.eclipse.model.VmdbgThread;
import vmdbg.eclipse.testrun.TestResult;
import vmdbg.eclipse.testrun.TestRun;
import vmdbg.eclipse.testrun.TestsAttributes;
import vmdbg.eclipse.testrun.VmdbgTestsLaunchDelegate;

/**
 * The "vmdbg Tests" launch type on the isolation crate's test binary, checked
 * through the view's model and Eclipse's JUnit model; then one test debugged
 * to a breakpoint on its own thread.
 */
final class TestsViewScenario {
    private static final long RUN_MS = 300_000;

    private TestsViewScenario() {
    }

    static File binary() {
        return new File(Env.prop("vmdbg.test.isolation"));
    }

    /** Why the tests scenario cannot run here, or null. */
    static String missing() {
        String tier = Env.programTierMissing();
        if (tier != null) return tier;
        String b = System.getProperty("vmdbg.test.isolation", "");
        if (b.isBlank() || !new File(b).isFile()) return "the isolation crate's test binary is not built (cargo test --no-run)";
        return null;
    }

    static ILaunchConfigurationWorkingCopy config() throws Exception {
        ILaunchManager lm = DebugPlugin.getDefault().getLaunchManager();
        ILaunchConfigurationWorkingCopy wc = lm.getLaunchConfigurationType(TestsAttributes.TYPE_ID).newInstance(null, "isolation tests");
        wc.setAttribute(TestsAttributes.BINARY, binary().getAbsolutePath());
        wc.setAttribute(TestsAttributes.SETUP, List.of("echo set up > /root/from-setup"));
        wc.setAttribute(TestsAttributes.ENGINE, Env.engine());
        wc.setAttribute(LaunchAttributes.VMDBG_PATH, Env.bin("vmdbg").getAbsolutePath());
        return wc;
    }

    static TestRun await(ILaunch launch) throws Exception {
        TestRun run = TestRun.latest();
        Check.that(run != null, "the launch made a TestRun");
        Check.that(run.await(RUN_MS), "vmdbg test ended within " + RUN_MS / 1000 + " s: " + run.summary());
        Check.equal(null, run.error(), "vmdbg test itself succeeded");
        Wait.until("the launch is terminated", 30_000, launch::isTerminated);
        Check.that(!run.tests().isEmpty() && !run.isRunning(), "vmdbg test's events reached the run: " + describe(run, launch));
        return run;
    }

    /** What a run holds and what vmdbg said on the launch's console, for a failure message. */
    static String describe(TestRun run, ILaunch launch) {
        StringBuilder s = new StringBuilder(run.summary()).append("; tests:");
        for (TestResult t : run.tests()) s.append(' ').append(t.name).append('=').append(t.status);
        String console = launch.getProcesses().length == 0 ? ""
            : launch.getProcesses()[0].getStreamsProxy().getOutputStreamMonitor().getContents();
        return s.append("; vmdbg said:\n").append(console).toString();
    }

    /**
     * The run's `vmdbg test --junit` report, imported into Eclipse's JUnit
     * model (JDT's org.eclipse.jdt.junit.core, part of the assembled
     * Eclipse): the same counts as the view, the failure's trace.
     */
    private static void checkJUnitImport(TestRun run) {
        Check.equal(null, run.junitError(), "the JUnit import");
        Object imported = run.junitSession();
        Check.that(imported instanceof ITestRunSession, "the run was imported into Eclipse's JUnit model: " + imported);
        Map<String, Integer> counts = new TreeMap<>();
        List<ITestCaseElement> cases = new ArrayList<>();
        collect((ITestRunSession) imported, cases);
        for (ITestCaseElement c : cases) counts.merge(c.getTestResult(false).toString(), 1, Integer::sum);
        Check.equal(Map.of("OK", 6, "Failure", 1, "Ignored", 1), counts, "results of the imported JUnit session");
        ITestCaseElement failed = cases.stream().filter(c -> c.getTestMethodName().equals("tests::deliberately_fails")).findFirst().orElse(null);
        Check.that(failed != null && failed.getFailureTrace() != null && failed.getFailureTrace().getTrace().contains("deliberately wrong arithmetic"),
            "the imported failure's trace names the assertion");
    }

    private static void collect(ITestElementContainer container, List<ITestCaseElement> into) {
        for (ITestElement e : container.getChildren()) {
            if (e instanceof ITestCaseElement c) into.add(c);
            else if (e instanceof ITestElementContainer inner) collect(inner, into);
        }
    }

    static String run() throws Exception {
        long start = System.nanoTime();
        ILaunch launch = config().launch(ILaunchManager.RUN_MODE, null);
        TestRun run = await(launch);
        long firstMs = (System.nanoTime() - start) / 1_000_000;
        Check.equal(8, run.tests().size(), "tests listed: " + run.summary());
        Check.equal(6L, run.count("ok"), "passed: " + run.summary());
        Check.equal(1L, run.count("failed"), "failed: " + run.summary());
        Check.equal(1L, run.count("ignored"), "ignored: " + run.summary());
        TestResult failed = run.test("tests::deliberately_fails");
        Check.equal("failed", failed.status, "tests::deliberately_fails");
        Check.that(failed.failure().contains("deliberately wrong arithmetic"), "its failure message: " + failed.failure());
        Check.equal("ignored", run.test("tests::ignored_by_default").status, "tests::ignored_by_default");
        Check.equal("ok", run.test("tests::sees_the_setup").status, "tests::sees_the_setup (the --setup command ran)");
        Check.that(run.summary().contains("6 passed, 1 failed, 1 ignored"), "summary: " + run.summary());
        checkJUnitImport(run);
        String console = launch.getProcesses()[0].getStreamsProxy().getOutputStreamMonitor().getContents();
        Check.that(console.contains("snapshot"), "vmdbg's progress reaches the launch's console: " + console);

        // Re-run one test: `-- BIN tests::sees_the_setup --exact`; its entry is replaced, the rest stays.
        TestResult before = run.test("tests::sees_the_setup");
        String oldStdout = before.stdout;
        long restart = System.nanoTime();
        ILaunch again = VmdbgTestsLaunchDelegate.rerun(run.config, "tests::sees_the_setup");
        TestRun rerun = await(again);
        long rerunMs = (System.nanoTime() - restart) / 1_000_000;
        Check.that(rerun == run, "the re-run reports into the run the view shows");
        Check.equal("ok", run.test("tests::sees_the_setup").status, "re-run tests::sees_the_setup");
        Check.that(run.summary().contains("vmdbg: passed: 1 passed, 0 failed, 0 ignored, 7 filtered out"),
            "the re-run ran that test alone: " + run.summary());
        Check.that(run.summary().startsWith("6 passed, 1 failed, 1 ignored"), "the other results stay: " + run.summary());
        Check.that(oldStdout.contains("test tests::sees_the_setup ... ok"), "its output: " + oldStdout);

        // Debug one test: a "vmdbg" program session of the binary with `tests::marker_one --exact --nocapture`.
        // A breakpoint in the code the test calls stops on the test's own thread (libtest spawns it, named
        // after the test; Linux keeps 15 characters of a thread's name), with the test's values readable.
        long debugStart = System.nanoTime();
        File lib = new File(Env.repo(), "tests/guests/isolation/src/lib.rs");
        int write = Env.lineContaining(lib, "std::fs::write(MARKER, test).unwrap();");
        long firstStopMs;
        String testThread;
        try (Session s = new Session()) {
            VmdbgThread thread = s.launchToBreakpoint(VmdbgTestsLaunchDelegate.debugConfig(run.config, "tests::marker_one"), lib, write);
            firstStopMs = s.firstStopMs;
            testThread = thread.getName();
            Check.that(thread.getName().startsWith("tests::marker_o"), "stopped on the test's thread: " + thread.getName()
                + " (threads: " + java.util.Arrays.toString(s.target.getThreads()) + ")");
            Check.that(s.target.getThreads().length >= 2, "the main thread is listed too: " + java.util.Arrays.toString(s.target.getThreads()));
            VmdbgStackFrame frame = Session.top(thread);
            Check.that(frame.functionName().endsWith("leave_a_marker") && frame.getLineNumber() == write,
                "stopped in leave_a_marker at line " + write + ": " + frame.getName());
            String test = Session.value(frame, "test");
            Check.that(test.contains("marker_one"), "leave_a_marker's argument `test`: " + test);
            Check.that(java.util.Arrays.stream(thread.getStackFrames()).anyMatch(f -> ((VmdbgStackFrame) f).functionName().endsWith("marker_one")),
                "the test function is on the thread's stack");
            s.runToEnd(thread, 120_000);
            String out = s.target.program().out().getContents();
            Check.that(out.contains("test tests::marker_one ... ok"), "the debugged test's stdout: " + out);
            Check.equal(0, s.target.program().exitCode(), "the debugged test's exit code");
        }
        long debugMs = (System.nanoTime() - debugStart) / 1_000_000;
        return "run " + firstMs + " ms, re-run of one test " + rerunMs + " ms, debug of one test: launch to first stop " + firstStopMs
            + " ms on thread '" + testThread + "', to its end " + debugMs + " ms";
    }
}
