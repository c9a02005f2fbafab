package vmdbg.eclipse.model;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.core.runtime.IStatus;
import org.eclipse.core.runtime.Status;
import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.model.DebugElement;

import vmdbg.eclipse.dap.DapException;

/** What every element of the vmdbg debug model shares: its target and the model id. */
public abstract class VmdbgDebugElement extends DebugElement {
    public static final String MODEL_ID = "vmdbg.eclipse.debugModel";
    public static final String PLUGIN_ID = "vmdbg.eclipse";

    protected VmdbgDebugElement(VmdbgDebugTarget target) {
        super(target);
    }

    @Override
    public String getModelIdentifier() {
        return MODEL_ID;
    }

    public VmdbgDebugTarget target() {
        return (VmdbgDebugTarget) getDebugTarget();
    }

    static DebugException error(DapException e) {
        return new DebugException(new Status(IStatus.ERROR, PLUGIN_ID, DebugException.TARGET_REQUEST_FAILED, e.getMessage(), null));
    }

    public static CoreException coreError(String message) {
        return new CoreException(new Status(IStatus.ERROR, PLUGIN_ID, message));
    }
}
