package vmdbg.eclipse.testrun;

import java.util.HashMap;
import java.util.Map;

import org.eclipse.core.runtime.IStatus;
import org.eclipse.core.runtime.Status;
import org.eclipse.debug.core.DebugEvent;
import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.model.IProcess;
import org.eclipse.debug.core.model.IStreamMonitor;
import org.eclipse.debug.core.model.IStreamsProxy;

import vmdbg.eclipse.model.VmdbgDebugElement;
import vmdbg.eclipse.model.VmdbgStreamMonitor;

/** `vmdbg test` as an Eclipse process: its console shows vmdbg's progress (stderr); stdout's events go to the TestRun. */
final class TestsProcess implements IProcess {
    private final ILaunch launch;
    private final String label;
    private final Process process;
    final VmdbgStreamMonitor progress = new VmdbgStreamMonitor();
    private final VmdbgStreamMonitor none = new VmdbgStreamMonitor();
    private final Map<String, String> attributes = new HashMap<>();
    private volatile boolean terminated;
    private volatile int exit = -1;

    TestsProcess(ILaunch launch, String label, Process process) {
        this.launch = launch;
        this.label = label;
        this.process = process;
        attributes.put(ATTR_PROCESS_TYPE, "vmdbg-test");
    }

    void ended(int code) {
        exit = code;
        terminated = true;
        DebugPlugin.getDefault().fireDebugEventSet(new DebugEvent[] {new DebugEvent(this, DebugEvent.TERMINATE)});
    }

    @Override
    public <T> T getAdapter(Class<T> adapter) {
        if (adapter.isInstance(this)) return adapter.cast(this);
        if (adapter == ILaunch.class) return adapter.cast(launch);
        return null;
    }

    @Override
    public boolean canTerminate() {
        return !terminated;
    }

    @Override
    public boolean isTerminated() {
        return terminated;
    }

    @Override
    public void terminate() {
        process.destroy();
    }

    @Override
    public String getLabel() {
        return label;
    }

    @Override
    public ILaunch getLaunch() {
        return launch;
    }

    @Override
    public IStreamsProxy getStreamsProxy() {
        return new IStreamsProxy() {
            @Override
            public IStreamMonitor getErrorStreamMonitor() {
                return none;
            }

            @Override
            public IStreamMonitor getOutputStreamMonitor() {
                return progress;
            }

            @Override
            public void write(String input) {
            }
        };
    }

    @Override
    public void setAttribute(String key, String value) {
        attributes.put(key, value);
    }

    @Override
    public String getAttribute(String key) {
        return attributes.get(key);
    }

    @Override
    public int getExitValue() throws DebugException {
        if (!terminated) throw new DebugException(new Status(IStatus.ERROR, VmdbgDebugElement.PLUGIN_ID, label + " has not ended"));
        return exit;
    }
}
