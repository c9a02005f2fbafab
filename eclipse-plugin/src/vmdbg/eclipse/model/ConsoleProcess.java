package vmdbg.eclipse.model;

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

/**
 * An Eclipse process with a console (its out and err monitors) whose real
 * process lives elsewhere — in the VM, or as `vmdbg test` — and which ends
 * when its owner says so. Subclasses say how it is terminated.
 */
public abstract class ConsoleProcess implements IProcess {
    private final ILaunch launch;
    private final String label;
    private final VmdbgStreamMonitor out = new VmdbgStreamMonitor();
    private final VmdbgStreamMonitor err = new VmdbgStreamMonitor();
    private final Map<String, String> attributes = new HashMap<>();
    private volatile boolean terminated;
    private volatile Integer exitValue;

    protected ConsoleProcess(ILaunch launch, String label, String processType) {
        this.launch = launch;
        this.label = label;
        attributes.put(ATTR_PROCESS_TYPE, processType);
    }

    public VmdbgStreamMonitor out() {
        return out;
    }

    public VmdbgStreamMonitor err() {
        return err;
    }

    protected void setExitValue(int code) {
        exitValue = code;
    }

    /** The exit code, or null when none came. */
    public Integer exitCode() {
        return exitValue;
    }

    protected void markTerminated() {
        if (terminated) return;
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
                return err;
            }

            @Override
            public IStreamMonitor getOutputStreamMonitor() {
                return out;
            }

            @Override
            public void write(String input) {
                // Console input is not carried to the real process by this plugin yet.
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

    /** -1 when the process ended without an exit code. */
    @Override
    public int getExitValue() throws DebugException {
        if (!terminated) throw new DebugException(new Status(IStatus.ERROR, VmdbgDebugElement.PLUGIN_ID, label + " has not ended"));
        return exitValue == null ? -1 : exitValue;
    }
}
