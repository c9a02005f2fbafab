package vmdbg.eclipse.ui;

import org.eclipse.core.resources.IFile;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.core.runtime.IAdaptable;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.ILaunchConfigurationType;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.debug.core.ILaunchManager;
import org.eclipse.debug.ui.DebugUITools;
import org.eclipse.debug.ui.ILaunchShortcut;
import org.eclipse.jface.viewers.ISelection;
import org.eclipse.jface.viewers.IStructuredSelection;
import org.eclipse.ui.IEditorPart;

import vmdbg.eclipse.launch.LaunchAttributes;

/** "Debug As > Program in VM" on a binary: reuses or makes a vmdbg configuration for it. */
public class VmdbgLaunchShortcut implements ILaunchShortcut {
    @Override
    public void launch(ISelection selection, String mode) {
        if (selection instanceof IStructuredSelection s && s.getFirstElement() instanceof IAdaptable a) {
            IFile file = a.getAdapter(IFile.class);
            if (file != null) launch(file, mode);
        }
    }

    @Override
    public void launch(IEditorPart editor, String mode) {
        IFile file = editor.getEditorInput().getAdapter(IFile.class);
        if (file != null) launch(file, mode);
    }

    private void launch(IFile file, String mode) {
        try {
            DebugUITools.launch(configurationFor(file.getLocation().toOSString()), mode);
        } catch (CoreException e) {
            org.eclipse.jface.dialogs.ErrorDialog.openError(null, "vmdbg", "Cannot debug " + file.getName() + " in a VM", e.getStatus());
        }
    }

    static ILaunchConfiguration configurationFor(String program) throws CoreException {
        ILaunchManager manager = DebugPlugin.getDefault().getLaunchManager();
        ILaunchConfigurationType type = manager.getLaunchConfigurationType(LaunchAttributes.TYPE_ID);
        for (ILaunchConfiguration c : manager.getLaunchConfigurations(type)) {
            if (program.equals(c.getAttribute(LaunchAttributes.PROGRAM, ""))) return c;
        }
        String name = manager.generateLaunchConfigurationName(new java.io.File(program).getName() + " in VM");
        ILaunchConfigurationWorkingCopy wc = type.newInstance(null, name);
        wc.setAttribute(LaunchAttributes.MODE, LaunchAttributes.MODE_PROGRAM);
        wc.setAttribute(LaunchAttributes.PROGRAM, program);
        return wc.doSave();
    }
}
