package vmdbg.eclipse.model;

import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.ILaunch;

/**
 * What Eclipse shows as a process with a console: the debugged program
 * (stdout, stderr, its exit code) or the VM's console. The real processes
 * live in the VM; this is their face on the DAP session, and terminating
 * it ends the session.
 */
public class VmdbgProcess extends ConsoleProcess {
    private VmdbgDebugTarget target;

    public VmdbgProcess(ILaunch launch, String label) {
        super(launch, label, "vmdbg");
    }

    void setTarget(VmdbgDebugTarget target) {
        this.target = target;
    }

    @Override
    public <T> T getAdapter(Class<T> adapter) {
        if (adapter == org.eclipse.debug.core.model.IDebugTarget.class && target != null) return adapter.cast(target);
        return super.getAdapter(adapter);
    }

    @Override
    public void terminate() throws DebugException {
        if (target != null) target.terminate();
    }
}
