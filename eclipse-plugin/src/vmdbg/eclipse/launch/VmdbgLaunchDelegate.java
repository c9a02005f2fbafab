package vmdbg.eclipse.launch;

import java.io.File;
import java.util.HashMap;
import java.util.Map;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.core.runtime.IProgressMonitor;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.ILaunchManager;

import vmdbg.eclipse.model.VmdbgDebugElement;
import vmdbg.eclipse.model.VmdbgDebugTarget;
import vmdbg.eclipse.model.VmdbgProcess;

/** Starts a vmdbg session for a "vmdbg" launch configuration (debug mode only). */
public class VmdbgLaunchDelegate extends PrebuiltBinaryDelegate {
    @Override
    public void launch(ILaunchConfiguration config, String mode, ILaunch launch, IProgressMonitor monitor) throws CoreException {
        if (!ILaunchManager.DEBUG_MODE.equals(mode)) {
            throw VmdbgDebugElement.coreError("vmdbg configurations run in Debug mode only (got " + mode + ")");
        }
        Map<String, Object> args = LaunchAttributes.dapArguments(config);
        String request = LaunchAttributes.request(config);
        String what = args.containsKey("program") ? new File((String) args.get("program")).getName()
            : args.containsKey("kernel") ? new File((String) args.get("kernel")).getName()
            : String.valueOf(args.get("gdbServer"));
        monitor.beginTask("vmdbg: " + what, IProgressMonitor.UNKNOWN);
        launch.setSourceLocator(new VmdbgSourceLocator());
        // Kernel and attach sessions have no program output: one console carries the guest's serial port.
        VmdbgProcess console = new VmdbgProcess(launch, "VM console (" + what + ")");
        VmdbgProcess program = args.containsKey("program") ? new VmdbgProcess(launch, what + " (in VM)") : console;
        if (program != console) launch.addProcess(program);
        launch.addProcess(console);
        VmdbgDebugTarget target = new VmdbgDebugTarget(launch, "vmdbg: " + what, program, console);
        launch.addDebugTarget(target);
        Map<String, String> env = new HashMap<>();
        String vmm = config.getAttribute(LaunchAttributes.VMM_PATH, "");
        if (!vmm.isBlank()) env.put("VMDBG_VMM", vmm);
        try {
            target.start(LaunchAttributes.vmdbgPath(config), env, request, args, monitor);
        } catch (CoreException e) {
            launch.removeDebugTarget(target);
            throw e;
        } finally {
            monitor.done();
        }
    }
}
