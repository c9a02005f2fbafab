package vmdbg.eclipse.tests;

import java.io.File;
import java.util.List;

import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.debug.core.ILaunchManager;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.testrun.TestResult;
import vmdbg.eclipse.testrun.TestRun;
import vmdbg.eclipse.testrun.TestsAttributes;
import vmdbg.eclipse.testrun.VmdbgTestsLaunchDelegate;

/** The "vmdbg Tests" launch type on the isolation crate's test binary, checked through the view's model. */
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
        for (int i = 0; i < 100 && !launch.isTerminated(); i++) Thread.sleep(50);
        Check.that(launch.isTerminated(), "the launch is terminated");
        return run;
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

        // Debug one test: a "vmdbg" program session of the binary with `tests::marker_one --exact --nocapture`, run to its end.
        long debugStart = System.nanoTime();
        try (Session s = new Session()) {
            var manager = DebugPlugin.getDefault().getBreakpointManager();
            manager.removeBreakpoints(manager.getBreakpoints(vmdbg.eclipse.model.VmdbgDebugElement.MODEL_ID), true);
            s.launch(VmdbgTestsLaunchDelegate.debugConfig(run.config, "tests::marker_one"));
            s.target.whenEnded().get(120, java.util.concurrent.TimeUnit.SECONDS);
            String out = s.target.program().out().getContents();
            Check.that(out.contains("test tests::marker_one ... ok"), "the debugged test's stdout: " + out);
            Check.equal(0, s.target.program().exitCode(), "the debugged test's exit code");
        }
        long debugMs = (System.nanoTime() - debugStart) / 1_000_000;
        return "run " + firstMs + " ms, re-run of one test " + rerunMs + " ms, debug of one test to its end " + debugMs + " ms";
    }
}
