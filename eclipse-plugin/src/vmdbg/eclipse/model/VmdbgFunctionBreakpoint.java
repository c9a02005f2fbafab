package vmdbg.eclipse.model;

import java.util.Map;

import org.eclipse.core.resources.IMarker;
import org.eclipse.core.resources.IResource;
import org.eclipse.core.resources.ResourcesPlugin;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.model.Breakpoint;

/**
 * A breakpoint on a function by name (DAP's setFunctionBreakpoints; vmdbg
 * resolves the name in the session's DWARF). Its marker sits on the
 * workspace root: a function has no file of its own.
 */
public class VmdbgFunctionBreakpoint extends Breakpoint {
    public static final String MARKER_TYPE = "vmdbg.eclipse.functionBreakpointMarker";
    public static final String FUNCTION = "vmdbg.function";

    /** Used by the breakpoint manager to restore persisted breakpoints. */
    public VmdbgFunctionBreakpoint() {
    }

    public VmdbgFunctionBreakpoint(String function) throws CoreException {
        IResource root = ResourcesPlugin.getWorkspace().getRoot();
        run(getMarkerRule(root), monitor -> setMarker(VmdbgLineBreakpoint.newMarker(root, MARKER_TYPE,
            Map.of(FUNCTION, function, IMarker.MESSAGE, "vmdbg function breakpoint: " + function + "()"))));
        DebugPlugin.getDefault().getBreakpointManager().addBreakpoint(this);
    }

    @Override
    public String getModelIdentifier() {
        return VmdbgDebugElement.MODEL_ID;
    }

    public String function() {
        return getMarker().getAttribute(FUNCTION, "");
    }
}
