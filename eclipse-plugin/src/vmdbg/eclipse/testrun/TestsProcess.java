package vmdbg.eclipse.testrun;

import org.eclipse.debug.core.ILaunch;

import vmdbg.eclipse.model.ConsoleProcess;
import vmdbg.eclipse.model.VmdbgStreamMonitor;

/** `vmdbg test` as an Eclipse process: its console shows vmdbg's progress (stderr); stdout's events go to the TestRun. */
final class TestsProcess extends ConsoleProcess {
    private final Process process;

    TestsProcess(ILaunch launch, String label, Process process) {
        super(launch, label, "vmdbg-test");
        this.process = process;
    }

    /** Where vmdbg's progress lines go. */
    VmdbgStreamMonitor progress() {
        return out();
    }

    void ended(int code) {
        setExitValue(code);
        markTerminated();
    }

    @Override
    public void terminate() {
        process.destroy();
    }
}
