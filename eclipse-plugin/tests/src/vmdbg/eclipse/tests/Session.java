package vmdbg.eclipse.tests;

import java.io.File;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.eclipse.core.resources.IResource;
import org.eclipse.core.resources.ResourcesPlugin;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.DebugEvent;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.IDebugEventSetListener;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.ILaunchConfigurationType;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.debug.core.ILaunchManager;
import org.eclipse.debug.core.model.IBreakpoint;
import org.eclipse.debug.core.model.IVariable;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.model.VmdbgDebugElement;
import vmdbg.eclipse.model.VmdbgDebugTarget;
import vmdbg.eclipse.model.VmdbgLineBreakpoint;
import vmdbg.eclipse.model.VmdbgStackFrame;
import vmdbg.eclipse.model.VmdbgThread;

/**
 * Drives one vmdbg launch through Eclipse's debug API only, as the UI
 * does: a launch configuration made through ILaunchManager, breakpoints in
 * the breakpoint manager, debug events for every stop.
 */
final class Session implements IDebugEventSetListener, AutoCloseable {
    private final LinkedBlockingQueue<DebugEvent> suspends = new LinkedBlockingQueue<>();
    ILaunch launch;
    VmdbgDebugTarget target;

    Session() {
        DebugPlugin.getDefault().addDebugEventListener(this);
    }

    @Override
    public void handleDebugEvents(DebugEvent[] events) {
        for (DebugEvent e : events) {
            // The threads a stop of another thread stopped too have no stop reason of their own.
            if (e.getKind() == DebugEvent.SUSPEND && e.getSource() instanceof VmdbgThread t && t.stopReason() != null) suspends.add(e);
        }
    }

    static ILaunchConfigurationWorkingCopy config(String name, String mode) throws CoreException {
        ILaunchManager manager = DebugPlugin.getDefault().getLaunchManager();
        ILaunchConfigurationType type = manager.getLaunchConfigurationType(LaunchAttributes.TYPE_ID);
        Check.that(type != null, "launch configuration type " + LaunchAttributes.TYPE_ID + " is not registered (plugin not loaded?)");
        ILaunchConfigurationWorkingCopy wc = type.newInstance(null, manager.generateLaunchConfigurationName(name));
        wc.setAttribute(LaunchAttributes.MODE, mode);
        wc.setAttribute(LaunchAttributes.VMDBG_PATH, Env.bin("vmdbg").getPath());
        return wc;
    }

    static ILaunchConfiguration kernelConfig() throws CoreException {
        ILaunchConfigurationWorkingCopy wc = config("calls kernel", LaunchAttributes.MODE_KERNEL);
        wc.setAttribute(LaunchAttributes.KERNEL, Env.kernel().getPath());
        wc.setAttribute(LaunchAttributes.VMM_PATH, Env.bin("vmdbg-vmm").getPath());
        return wc.doSave();
    }

    static ILaunchConfiguration programConfig() throws CoreException {
        ILaunchConfigurationWorkingCopy wc = config("locals in VM", LaunchAttributes.MODE_PROGRAM);
        wc.setAttribute(LaunchAttributes.PROGRAM, Env.program().getPath());
        wc.setAttribute(LaunchAttributes.ENGINE, Env.engine());
        return wc.doSave();
    }

    /** Removes every vmdbg breakpoint, then sets one at file:line (marker on the workspace root: the file is outside it). */
    static VmdbgLineBreakpoint onlyBreakpoint(File file, int line) throws CoreException {
        var manager = DebugPlugin.getDefault().getBreakpointManager();
        manager.removeBreakpoints(manager.getBreakpoints(VmdbgDebugElement.MODEL_ID), true);
        IResource root = ResourcesPlugin.getWorkspace().getRoot();
        return new VmdbgLineBreakpoint(root, file.getAbsolutePath(), line);
    }

    /** Launches in debug mode through ILaunchConfiguration.launch; returns when the adapter took the configuration. */
    void launch(ILaunchConfiguration config) throws CoreException {
        launch = config.launch(ILaunchManager.DEBUG_MODE, null);
        target = (VmdbgDebugTarget) launch.getDebugTarget();
        Check.that(target != null, "the launch has no debug target");
    }

    /** Time from the launch to the first stop, set by launchToBreakpoint. */
    long firstStopMs;

    /** Makes file:line the only breakpoint, launches, and returns the thread stopped there (checked: it names that breakpoint). */
    VmdbgThread launchToBreakpoint(ILaunchConfiguration config, File file, int line) throws Exception {
        VmdbgLineBreakpoint bp = onlyBreakpoint(file, line);
        long start = System.nanoTime();
        launch(config);
        VmdbgThread thread = suspended(DebugEvent.BREAKPOINT, VmdbgDebugTarget.LAUNCH_MS);
        firstStopMs = (System.nanoTime() - start) / 1_000_000;
        Check.that(hit(thread, bp), "the thread's breakpoints name the one set (" + thread.getName() + ")");
        return thread;
    }

    /** The next suspend of a vmdbg thread, which must have the given detail. */
    VmdbgThread suspended(int detail, long timeoutMs) throws InterruptedException {
        DebugEvent e = suspends.poll(timeoutMs, TimeUnit.MILLISECONDS);
        if (e == null) {
            String console = target == null ? "" : target.console().out().getContents() + target.console().err().getContents();
            throw new AssertionError("no suspend within " + timeoutMs + " ms; VM console so far:\n" + console);
        }
        Check.equal(detailName(detail), detailName(e.getDetail()), "suspend detail");
        return (VmdbgThread) e.getSource();
    }

    static String detailName(int detail) {
        return switch (detail) {
            case DebugEvent.BREAKPOINT -> "BREAKPOINT";
            case DebugEvent.STEP_END -> "STEP_END";
            case DebugEvent.CLIENT_REQUEST -> "CLIENT_REQUEST";
            default -> "UNSPECIFIED(" + detail + ")";
        };
    }

    static VmdbgStackFrame top(VmdbgThread thread) throws CoreException {
        VmdbgStackFrame f = (VmdbgStackFrame) thread.getTopStackFrame();
        Check.that(f != null, thread.getName() + " has no stack frames");
        return f;
    }

    /** The top frame, checked to be in function at line. */
    static VmdbgStackFrame at(VmdbgThread thread, String function, int line) throws CoreException {
        VmdbgStackFrame f = top(thread);
        Check.equal(function + ":" + line, f.functionName() + ":" + f.getLineNumber(), "where " + thread.getName() + " stopped");
        return f;
    }

    static String value(VmdbgStackFrame frame, String name) throws CoreException {
        for (IVariable v : frame.getVariables()) {
            if (v.getName().equals(name)) return v.getValue().getValueString();
        }
        StringBuilder names = new StringBuilder();
        for (IVariable v : frame.getVariables()) names.append(v.getName()).append(' ');
        throw new AssertionError("no variable " + name + " in " + frame.getName() + " (has: " + names + ")");
    }

    static boolean hit(VmdbgThread thread, IBreakpoint b) {
        return List.of(thread.getBreakpoints()).contains(b);
    }

    /** Resumes and waits for the session to end; fails if it does not. */
    void runToEnd(VmdbgThread thread, long timeoutMs) throws Exception {
        thread.resume();
        target.whenEnded().get(timeoutMs, TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        DebugPlugin.getDefault().removeDebugEventListener(this);
        try {
            if (launch != null && !launch.isTerminated()) launch.terminate();
        } catch (CoreException e) {
            System.err.println("vmdbg test: terminating the launch: " + e.getMessage());
        }
    }
}
