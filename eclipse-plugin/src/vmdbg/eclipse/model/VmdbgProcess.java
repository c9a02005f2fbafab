package vmdbg.eclipse.model;

import java.util.HashMap;
import java.util.Map;

import org.eclipse.debug.core.DebugEvent;
import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.model.IProcess;
import org.eclipse.debug.core.model.IStreamMonitor;
import org.eclipse.debug.core.model.IStreamsProxy;

/**
 * What Eclipse shows as a process with a console: the debugged program
 * (stdout, stderr, its exit code) or the VM's console. The real processes
 * live in the VM; this is their face on the DAP session.
 */
public class VmdbgProcess implements IProcess {
    private final ILaunch launch;
    private final String label;
    private final VmdbgStreamMonitor out = new VmdbgStreamMonitor();
    private final VmdbgStreamMonitor err = new VmdbgStreamMonitor();
    private final Map<String, String> attributes = new HashMap<>();
    private VmdbgDebugTarget target;
    private volatile boolean terminated;
    private volatile Integer exitValue;

    public VmdbgProcess(ILaunch launch, String label) {
        this.launch = launch;
        this.label = label;
        attributes.put(ATTR_PROCESS_TYPE, "vmdbg");
    }

    void setTarget(VmdbgDebugTarget target) {
        this.target = target;
    }

    public VmdbgStreamMonitor out() {
        return out;
    }

    public VmdbgStreamMonitor err() {
        return err;
    }

    void setExitValue(int code) {
        exitValue = code;
    }

    void markTerminated() {
        if (terminated) return;
        terminated = true;
        DebugPlugin.getDefault().fireDebugEventSet(new DebugEvent[] {new DebugEvent(this, DebugEvent.TERMINATE)});
    }

    @Override
    public <T> T getAdapter(Class<T> adapter) {
        if (adapter.isInstance(this)) return adapter.cast(this);
        if (adapter == ILaunch.class) return adapter.cast(launch);
        if (adapter == org.eclipse.debug.core.model.IDebugTarget.class && target != null) return adapter.cast(target);
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
    public void terminate() throws DebugException {
        if (target != null) target.terminate();
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
                // Console input to the guest is not carried over DAP by this plugin yet.
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

    /** The program's exit code (for a kernel, the value it wrote to port 0xf4); -1 until it is known. */
    @Override
    public int getExitValue() throws DebugException {
        if (!terminated) throw new DebugException(new org.eclipse.core.runtime.Status(
            org.eclipse.core.runtime.IStatus.ERROR, VmdbgDebugElement.PLUGIN_ID, label + " has not ended"));
        return exitValue == null ? -1 : exitValue;
    }

    /** The exit code from the `exited` event, or null when none came (the session was ended first). */
    public Integer exitCode() {
        return exitValue;
    }
}
