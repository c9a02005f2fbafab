package vmdbg.eclipse.ui;

import java.io.File;
import java.util.Set;

import org.eclipse.core.resources.IFile;
import org.eclipse.core.resources.IResource;
import org.eclipse.core.resources.ResourcesPlugin;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.ui.actions.IToggleBreakpointsTarget;
import org.eclipse.debug.ui.actions.IToggleBreakpointsTargetFactory;
import org.eclipse.jface.text.ITextSelection;
import org.eclipse.jface.viewers.ISelection;
import org.eclipse.ui.IEditorInput;
import org.eclipse.ui.IURIEditorInput;
import org.eclipse.ui.IWorkbenchPart;
import org.eclipse.ui.texteditor.ITextEditor;

import vmdbg.eclipse.model.VmdbgLineBreakpoint;

/**
 * Line breakpoints from any text editor on a C, C++, Rust or assembly file
 * (ruler double-click, Run > Toggle Breakpoint). Eclipse here has only the
 * platform's text editors, so the file name decides, not an editor type.
 */
public class ToggleBreakpointsFactory implements IToggleBreakpointsTargetFactory {
    public static final String TARGET_ID = "vmdbg.eclipse.toggleLineBreakpoints";

    @Override
    public Set<String> getToggleTargets(IWorkbenchPart part, ISelection selection) {
        return sourceFile(part) != null ? Set.of(TARGET_ID) : Set.of();
    }

    @Override
    public String getDefaultToggleTarget(IWorkbenchPart part, ISelection selection) {
        return sourceFile(part) != null ? TARGET_ID : null;
    }

    @Override
    public IToggleBreakpointsTarget createToggleTarget(String targetID) {
        return TARGET_ID.equals(targetID) ? new Target() : null;
    }

    @Override
    public String getToggleTargetName(String targetID) {
        return "vmdbg line breakpoints";
    }

    @Override
    public String getToggleTargetDescription(String targetID) {
        return "Line breakpoints for programs and kernels debugged in a VM by vmdbg";
    }

    /** The editor's file on disk, when the part is a text editor on a source file vmdbg takes breakpoints in. */
    static File sourceFile(IWorkbenchPart part) {
        if (!(part instanceof ITextEditor editor)) return null;
        IEditorInput input = editor.getEditorInput();
        File file = null;
        IFile ifile = input.getAdapter(IFile.class);
        if (ifile != null && ifile.getLocation() != null) file = ifile.getLocation().toFile();
        else if (input instanceof IURIEditorInput u && "file".equals(u.getURI().getScheme())) file = new File(u.getURI());
        return file != null && VmdbgLineBreakpoint.isSourceFile(file.getName()) ? file : null;
    }

    /** Toggles a vmdbg breakpoint on the selection's line of a text editor (1-based line). */
    public static class Target implements IToggleBreakpointsTarget {
        @Override
        public void toggleLineBreakpoints(IWorkbenchPart part, ISelection selection) throws CoreException {
            File file = sourceFile(part);
            if (file == null || !(selection instanceof ITextSelection text)) return;
            toggle((ITextEditor) part, file, text.getStartLine() + 1);
        }

        /** Removes the breakpoint at file:line, or makes one; returns the new breakpoint or null. */
        public static VmdbgLineBreakpoint toggle(ITextEditor editor, File file, int line) throws CoreException {
            String path = file.getAbsolutePath();
            VmdbgLineBreakpoint existing = VmdbgLineBreakpoint.find(path, line);
            if (existing != null) {
                existing.delete();
                return null;
            }
            IFile ifile = editor.getEditorInput().getAdapter(IFile.class);
            IResource resource = ifile != null ? ifile : ResourcesPlugin.getWorkspace().getRoot();
            return new VmdbgLineBreakpoint(resource, path, line);
        }

        @Override
        public boolean canToggleLineBreakpoints(IWorkbenchPart part, ISelection selection) {
            return sourceFile(part) != null && selection instanceof ITextSelection;
        }

        @Override
        public void toggleMethodBreakpoints(IWorkbenchPart part, ISelection selection) {
        }

        @Override
        public boolean canToggleMethodBreakpoints(IWorkbenchPart part, ISelection selection) {
            return false;
        }

        @Override
        public void toggleWatchpoints(IWorkbenchPart part, ISelection selection) {
        }

        @Override
        public boolean canToggleWatchpoints(IWorkbenchPart part, ISelection selection) {
            return false;
        }
    }
}
