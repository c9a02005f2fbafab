/**
 * The "vmdbg Tests" launch type: runs `vmdbg test --format json` on a
 * libtest or GoogleTest binary (each test in a VM restored from one set-up
 * snapshot), parses its events as they arrive into a {@link vmdbg.eclipse.testrun.TestRun}
 * that the "vmdbg Tests" view (vmdbg.eclipse.ui.VmdbgTestsView) shows,
 * re-runs one test (`-- BIN NAME --exact`) and debugs one test through the
 * "vmdbg" launch type; where JDT's JUnit core is installed, imports each
 * run's `--junit` report into Eclipse's JUnit model.
 */
package vmdbg.eclipse.testrun;
