package vmdbg.eclipse.model;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.eclipse.debug.core.DebugEvent;
import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.model.IBreakpoint;
import org.eclipse.debug.core.model.IStackFrame;
import org.eclipse.debug.core.model.IThread;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import vmdbg.eclipse.dap.DapException;

/** A DAP thread: a vCPU of a kernel session or a thread of the debugged program. */
public class VmdbgThread extends VmdbgDebugElement implements IThread {
    private final int id;
    private volatile String name;
    private volatile boolean suspended;
    private volatile boolean stepping;
    private volatile String stopReason;
    private volatile IBreakpoint[] breakpoints = new IBreakpoint[0];
    private IStackFrame[] frames;

    VmdbgThread(VmdbgDebugTarget target, int id, String name) {
        super(target);
        this.id = id;
        this.name = name;
    }

    public int id() {
        return id;
    }

    void setName(String name) {
        this.name = name;
    }

    /**
     * The `reason` of the last `stopped` event for this thread (breakpoint,
     * step, pause, entry, exception …); null while it runs, or when another
     * thread's stop stopped it too.
     */
    public String stopReason() {
        return stopReason;
    }

    synchronized void suspended(String reason, IBreakpoint[] hit) {
        suspended = true;
        stepping = false;
        stopReason = reason;
        breakpoints = hit;
        frames = null;
    }

    synchronized void resumed() {
        suspended = false;
        stopReason = null;
        breakpoints = new IBreakpoint[0];
        frames = null;
    }

    @Override
    public synchronized IStackFrame[] getStackFrames() throws DebugException {
        if (!suspended || isTerminated()) return new IStackFrame[0];
        if (frames == null) {
            try {
                JsonObject body = target().dap().call("stackTrace", Map.of("threadId", id, "startFrame", 0, "levels", 64),
                    VmdbgDebugTarget.REQUEST_MS);
                List<IStackFrame> list = new ArrayList<>();
                for (JsonElement e : body.getAsJsonArray("stackFrames")) list.add(new VmdbgStackFrame(this, e.getAsJsonObject()));
                frames = list.toArray(new IStackFrame[0]);
            } catch (DapException e) {
                throw error(e);
            }
        }
        return frames;
    }

    @Override
    public boolean hasStackFrames() {
        return suspended && !isTerminated();
    }

    @Override
    public int getPriority() {
        return 0;
    }

    @Override
    public IStackFrame getTopStackFrame() throws DebugException {
        IStackFrame[] f = getStackFrames();
        return f.length > 0 ? f[0] : null;
    }

    @Override
    public String getName() {
        if (isTerminated()) return name;
        if (!suspended) return name + " (running)";
        return name + " (suspended" + (stopReason == null ? "" : ": " + stopReason) + ")";
    }

    @Override
    public IBreakpoint[] getBreakpoints() {
        return breakpoints;
    }

    @Override public boolean canResume() { return suspended && !isTerminated(); }
    @Override public boolean canSuspend() { return !suspended && !isTerminated(); }
    @Override public boolean isSuspended() { return suspended && !isTerminated(); }
    @Override public boolean canStepInto() { return canResume(); }
    @Override public boolean canStepOver() { return canResume(); }
    @Override public boolean canStepReturn() { return canResume(); }
    @Override public boolean isStepping() { return stepping; }
    @Override public boolean canTerminate() { return target().canTerminate(); }
    @Override public boolean isTerminated() { return target().isTerminated(); }
    @Override public void terminate() throws DebugException { target().terminate(); }

    @Override
    public void resume() throws DebugException {
        run("continue", DebugEvent.CLIENT_REQUEST, false);
    }

    @Override
    public void suspend() throws DebugException {
        try {
            target().dap().call("pause", Map.of("threadId", id), VmdbgDebugTarget.REQUEST_MS);
        } catch (DapException e) {
            throw error(e);
        }
    }

    @Override
    public void stepInto() throws DebugException {
        run("stepIn", DebugEvent.STEP_INTO, true);
    }

    @Override
    public void stepOver() throws DebugException {
        run("next", DebugEvent.STEP_OVER, true);
    }

    @Override
    public void stepReturn() throws DebugException {
        run("stepOut", DebugEvent.STEP_RETURN, true);
    }

    /**
     * Resumes with a run-control request. The model is marked running before
     * the request goes out: the `stopped` event that ends a step can arrive
     * before its response.
     */
    private void run(String command, int detail, boolean step) throws DebugException {
        String reason = stopReason;
        IBreakpoint[] hit = breakpoints;
        target().resumedAll(this, detail, step);
        try {
            target().dap().call(command, Map.of("threadId", id), VmdbgDebugTarget.REQUEST_MS);
        } catch (DapException e) {
            // vmdbg refused: the thread is still where it stopped, so the views must say so again.
            if (!isTerminated()) {
                suspended(reason, hit);
                fireSuspendEvent(DebugEvent.CLIENT_REQUEST);
            }
            throw error(e);
        }
    }

    void setStepping(boolean stepping) {
        this.stepping = stepping;
    }
}
