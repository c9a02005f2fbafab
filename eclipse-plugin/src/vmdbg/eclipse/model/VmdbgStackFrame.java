package vmdbg.eclipse.model;

import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.model.IRegisterGroup;
import org.eclipse.debug.core.model.IStackFrame;
import org.eclipse.debug.core.model.IThread;
import org.eclipse.debug.core.model.IVariable;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import vmdbg.eclipse.dap.DapException;

/**
 * One DAP stack frame. The Variables view shows the Arguments and Locals
 * scopes flat (as C debuggers do), other scopes (Globals) as one node each;
 * the Registers scope goes to the Registers view. Scopes are fetched on
 * first use; a frame lives until its thread resumes.
 */
public class VmdbgStackFrame extends VmdbgDebugElement implements IStackFrame {
    private final VmdbgThread thread;
    private final int id;
    private final String name;
    private final int line;
    private final String path;
    private IVariable[] variables;
    private IRegisterGroup[] registerGroups;

    VmdbgStackFrame(VmdbgThread thread, JsonObject frame) {
        super(thread.target());
        this.thread = thread;
        this.id = frame.get("id").getAsInt();
        this.name = frame.get("name").getAsString();
        this.line = frame.has("line") ? frame.get("line").getAsInt() : 0;
        JsonObject source = frame.has("source") && frame.get("source").isJsonObject() ? frame.getAsJsonObject("source") : null;
        this.path = source != null && source.has("path") ? source.get("path").getAsString() : null;
    }

    /** The absolute path of this frame's source file as the adapter reports it, or null. */
    public String sourcePath() {
        return path;
    }

    /** The function's name as the adapter gives it (e.g. `leaf`, `serial_putc [inlined]`). */
    public String functionName() {
        return name;
    }

    private synchronized void loadScopes() throws DebugException {
        if (variables != null) return;
        List<IVariable> vars = new ArrayList<>();
        List<IRegisterGroup> groups = new ArrayList<>();
        try {
            JsonObject body = target().dap().call("scopes", Map.of("frameId", id), VmdbgDebugTarget.REQUEST_MS);
            for (JsonElement e : body.getAsJsonArray("scopes")) {
                JsonObject scope = e.getAsJsonObject();
                String scopeName = scope.get("name").getAsString();
                int ref = scope.get("variablesReference").getAsInt();
                if (scopeName.equals("Registers")) {
                    groups.add(new VmdbgRegisterGroup(target(), scopeName, ref));
                } else if (scopeName.equals("Locals") || scopeName.equals("Arguments")) {
                    for (JsonObject v : VmdbgValue.fetch(target(), ref)) vars.add(VmdbgVariable.of(target(), v));
                } else {
                    vars.add(new VmdbgVariable(target(), scopeName, new VmdbgValue(target(), "", null, ref)));
                }
            }
        } catch (DapException e) {
            throw error(e);
        }
        registerGroups = groups.toArray(new IRegisterGroup[0]);
        variables = vars.toArray(new IVariable[0]);
    }

    @Override
    public IThread getThread() {
        return thread;
    }

    @Override
    public IVariable[] getVariables() throws DebugException {
        loadScopes();
        return variables;
    }

    @Override
    public boolean hasVariables() throws DebugException {
        return getVariables().length > 0;
    }

    @Override
    public int getLineNumber() {
        return line;
    }

    @Override
    public int getCharStart() {
        return -1;
    }

    @Override
    public int getCharEnd() {
        return -1;
    }

    @Override
    public String getName() {
        return path == null ? name + "()" : name + "() at " + new File(path).getName() + ":" + line;
    }

    @Override
    public IRegisterGroup[] getRegisterGroups() throws DebugException {
        loadScopes();
        return registerGroups;
    }

    @Override
    public boolean hasRegisterGroups() {
        return true;
    }

    // Run control acts on the frame's thread, as in every Eclipse debugger.
    @Override public boolean canStepInto() { return thread.canStepInto(); }
    @Override public boolean canStepOver() { return thread.canStepOver(); }
    @Override public boolean canStepReturn() { return thread.canStepReturn(); }
    @Override public boolean isStepping() { return thread.isStepping(); }
    @Override public void stepInto() throws DebugException { thread.stepInto(); }
    @Override public void stepOver() throws DebugException { thread.stepOver(); }
    @Override public void stepReturn() throws DebugException { thread.stepReturn(); }
    @Override public boolean canResume() { return thread.canResume(); }
    @Override public boolean canSuspend() { return thread.canSuspend(); }
    @Override public boolean isSuspended() { return thread.isSuspended(); }
    @Override public void resume() throws DebugException { thread.resume(); }
    @Override public void suspend() throws DebugException { thread.suspend(); }
    @Override public boolean canTerminate() { return thread.canTerminate(); }
    @Override public boolean isTerminated() { return thread.isTerminated(); }
    @Override public void terminate() throws DebugException { thread.terminate(); }

    @Override
    public boolean equals(Object o) {
        return o instanceof VmdbgStackFrame f && f.thread == thread && f.id == id;
    }

    @Override
    public int hashCode() {
        return thread.hashCode() * 31 + id;
    }
}
