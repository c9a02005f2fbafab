package vmdbg.eclipse.model;

import java.util.Map;

import org.eclipse.core.resources.IMarker;
import org.eclipse.core.resources.IResource;
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
        run(getMarkerRule(resource), monitor -> setMarker(newMarker(resource, MARKER_TYPE, Map.of(IMarker.LINE_NUMBER, line, PATH, path,
            IMarker.MESSAGE, "vmdbg line breakpoint: " + new java.io.File(path).getName() + " [line: " + line + "]"))));
        DebugPlugin.getDefault().getBreakpointManager().addBreakpoint(this);
    }

    /** A vmdbg breakpoint's marker: enabled, persisted, of this model, with the given attributes. */
    static IMarker newMarker(IResource resource, String type, Map<String, Object> attributes) throws CoreException {
        IMarker marker = resource.createMarker(type);
        marker.setAttribute(IBreakpoint.ENABLED, true);
        marker.setAttribute(IBreakpoint.PERSISTED, true);
        marker.setAttribute(IBreakpoint.ID, VmdbgDebugElement.MODEL_ID);
        marker.setAttributes(attributes.keySet().toArray(new String[0]), attributes.values().toArray());
        return marker;
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
