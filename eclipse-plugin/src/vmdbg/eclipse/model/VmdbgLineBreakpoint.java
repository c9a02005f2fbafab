package vmdbg.eclipse.model;

import org.eclipse.core.resources.IMarker;
import org.eclipse.core.resources.IResource;
import org.eclipse.core.resources.IWorkspaceRunnable;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.model.IBreakpoint;
import org.eclipse.debug.core.model.LineBreakpoint;

/**
 * A source-line breakpoint of the vmdbg model. Its marker sits on the
 * workspace file when the source is in the workspace, else on the
 * workspace root; either way the absolute path the adapter matches against
 * DWARF is kept in {@link #PATH}.
 */
public class VmdbgLineBreakpoint extends LineBreakpoint {
    public static final String MARKER_TYPE = "vmdbg.eclipse.lineBreakpointMarker";
    public static final String PATH = "vmdbg.path";

    /** Used by the breakpoint manager to restore persisted breakpoints. */
    public VmdbgLineBreakpoint() {
    }

    public VmdbgLineBreakpoint(IResource resource, String path, int line) throws CoreException {
        IWorkspaceRunnable create = monitor -> {
            IMarker marker = resource.createMarker(MARKER_TYPE);
            setMarker(marker);
            marker.setAttribute(IBreakpoint.ENABLED, true);
            marker.setAttribute(IBreakpoint.PERSISTED, true);
            marker.setAttribute(IMarker.LINE_NUMBER, line);
            marker.setAttribute(IBreakpoint.ID, getModelIdentifier());
            marker.setAttribute(PATH, path);
            marker.setAttribute(IMarker.MESSAGE, "vmdbg line breakpoint: " + new java.io.File(path).getName() + " [line: " + line + "]");
        };
        run(getMarkerRule(resource), create);
        DebugPlugin.getDefault().getBreakpointManager().addBreakpoint(this);
    }

    @Override
    public String getModelIdentifier() {
        return VmdbgDebugElement.MODEL_ID;
    }

    public String path() {
        return getMarker().getAttribute(PATH, "");
    }

    /** The vmdbg breakpoint at path:line, or null. */
    public static VmdbgLineBreakpoint find(String path, int line) throws CoreException {
        for (IBreakpoint b : DebugPlugin.getDefault().getBreakpointManager().getBreakpoints(VmdbgDebugElement.MODEL_ID)) {
            if (b instanceof VmdbgLineBreakpoint v && v.path().equals(path) && v.getLineNumber() == line) return v;
        }
        return null;
    }

    /** File names the editors offer breakpoints in: C, C++, Rust and assembly sources. */
    public static boolean isSourceFile(String name) {
        String n = name.toLowerCase(java.util.Locale.ROOT);
        for (String ext : new String[] {".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".rs", ".s", ".asm"}) {
            if (n.endsWith(ext)) return true;
        }
        return false;
    }
}
