package vmdbg.eclipse.ui;

import org.eclipse.core.filesystem.IFileStore;
import org.eclipse.core.resources.IFile;
import org.eclipse.debug.core.model.IValue;
import org.eclipse.debug.ui.IDebugModelPresentation;
import org.eclipse.debug.ui.IValueDetailListener;
import org.eclipse.jface.viewers.LabelProvider;
import org.eclipse.ui.IEditorInput;
import org.eclipse.ui.ide.FileStoreEditorInput;
import org.eclipse.ui.part.FileEditorInput;

import vmdbg.eclipse.model.BreakpointOptions;
import vmdbg.eclipse.model.VmdbgFunctionBreakpoint;
import vmdbg.eclipse.model.VmdbgLineBreakpoint;

/** Labels come from the model's names; sources open in the platform's text editor, registered for C, C++, Rust and assembly files in plugin.xml (Debian's Eclipse has no C or Rust editor). */
public class VmdbgModelPresentation extends LabelProvider implements IDebugModelPresentation {
    public static final String EDITOR_ID = "vmdbg.eclipse.sourceEditor";

    @Override
    public void setAttribute(String attribute, Object value) {
    }

    @Override
    public String getText(Object element) {
        if (element instanceof VmdbgLineBreakpoint b) {
            return new java.io.File(b.path()).getName() + " [line: " + b.getMarker().getAttribute(org.eclipse.core.resources.IMarker.LINE_NUMBER, 0) + "]"
                + BreakpointOptions.describe(b);
        }
        if (element instanceof VmdbgFunctionBreakpoint b) return b.function() + "() [function]" + BreakpointOptions.describe(b);
        // null: the Debug views use the element's own name.
        return null;
    }

    @Override
    public void computeDetail(IValue value, IValueDetailListener listener) {
        String detail;
        try {
            detail = value.getValueString();
        } catch (org.eclipse.debug.core.DebugException e) {
            detail = e.getMessage();
        }
        listener.detailComputed(value, detail);
    }

    @Override
    public IEditorInput getEditorInput(Object element) {
        if (element instanceof IFile f) return new FileEditorInput(f);
        if (element instanceof IFileStore s) return new FileStoreEditorInput(s);
        if (element instanceof VmdbgLineBreakpoint b && b.getMarker().getResource() instanceof IFile f) return new FileEditorInput(f);
        return null;
    }

    @Override
    public String getEditorId(IEditorInput input, Object element) {
        return EDITOR_ID;
    }
}
