package vmdbg.eclipse.launch;

import java.io.File;

import org.eclipse.core.filesystem.EFS;
import org.eclipse.core.resources.IFile;
import org.eclipse.core.resources.ResourcesPlugin;
import org.eclipse.debug.core.model.ISourceLocator;
import org.eclipse.debug.core.model.IStackFrame;

import vmdbg.eclipse.model.VmdbgStackFrame;

/**
 * Finds a frame's source from the absolute path vmdbg reports (DWARF's
 * comp_dir + file): the workspace file at that place when there is one, so
 * the editor shows its breakpoint markers, else the file itself.
 */
public class VmdbgSourceLocator implements ISourceLocator {
    @Override
    public Object getSourceElement(IStackFrame frame) {
        if (!(frame instanceof VmdbgStackFrame f) || f.sourcePath() == null) return null;
        File file = new File(f.sourcePath());
        if (!file.isFile()) return null;
        IFile[] inWorkspace = ResourcesPlugin.getWorkspace().getRoot().findFilesForLocationURI(file.toURI());
        for (IFile i : inWorkspace) if (i.exists()) return i;
        return EFS.getLocalFileSystem().fromLocalFile(file);
    }
}
