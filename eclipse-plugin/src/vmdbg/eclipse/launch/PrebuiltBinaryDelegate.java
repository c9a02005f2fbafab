package vmdbg.eclipse.launch;

import org.eclipse.core.runtime.IProgressMonitor;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.model.LaunchConfigurationDelegate;

/** A launch of binaries built outside Eclipse (a program, a kernel, a test binary): nothing to save or build first. */
public abstract class PrebuiltBinaryDelegate extends LaunchConfigurationDelegate {
    /** Unsaved editors do not change what runs. */
    @Override
    protected boolean saveBeforeLaunch(ILaunchConfiguration configuration, String mode, IProgressMonitor monitor) {
        return true;
    }

    /** Eclipse's default builds the workspace first; vmdbg runs binaries built elsewhere. */
    @Override
    public boolean buildForLaunch(ILaunchConfiguration configuration, String mode, IProgressMonitor monitor) {
        return false;
    }
}
