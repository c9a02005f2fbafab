package vmdbg.eclipse.model;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import org.eclipse.core.resources.IMarkerDelta;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.core.runtime.IProgressMonitor;
import org.eclipse.debug.core.DebugEvent;
import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.IBreakpointManager;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.model.IBreakpoint;
import org.eclipse.debug.core.model.IDebugTarget;
import org.eclipse.debug.core.model.IMemoryBlock;
import org.eclipse.debug.core.model.IProcess;
import org.eclipse.debug.core.model.IThread;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import vmdbg.eclipse.dap.DapAdapter;
import vmdbg.eclipse.dap.DapConnection;
import vmdbg.eclipse.dap.DapException;

/**
 * One `vmdbg dap` session as an Eclipse debug target. It translates: DAP
 * events become Eclipse debug events, Eclipse's run control and breakpoint
 * changes become DAP requests. All debugging logic stays in vmdbg.
 */
public class VmdbgDebugTarget extends VmdbgDebugElement implements IDebugTarget {
    /** Requests that answer from the adapter's state (stack, variables, run control). */
    static final long REQUEST_MS = 30_000;
    /** `launch` boots a VM; under TCG on a loaded machine that takes minutes. */
    public static final long LAUNCH_MS = 300_000;

    private final ILaunch launch;
    private final VmdbgProcess program;
    private final VmdbgProcess console;
    private final String name;
    private final Map<Integer, VmdbgThread> threads = new LinkedHashMap<>();
    private final Map<Integer, IBreakpoint> byDapId = new ConcurrentHashMap<>();
    private final Map<IBreakpoint, JsonObject> dapState = new ConcurrentHashMap<>();
    // Events are handled in order, off the reader thread, so a handler may make requests.
    private final ExecutorService events = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "vmdbg DAP events");
        t.setDaemon(true);
        return t;
    });
    private final CompletableFuture<Void> initialized = new CompletableFuture<>();
    private final CompletableFuture<Void> ended = new CompletableFuture<>();
    private DapAdapter adapter;
    private JsonObject capabilities = new JsonObject();
    private volatile boolean terminated;
    private volatile boolean attach;

    public VmdbgDebugTarget(ILaunch launch, String name, VmdbgProcess program, VmdbgProcess console) {
        super(null);
        this.launch = launch;
        this.name = name;
        this.program = program;
        this.console = console;
        program.setTarget(this);
        if (console != program) console.setTarget(this);
    }

    @Override
    public IDebugTarget getDebugTarget() {
        return this;
    }

    @Override
    public ILaunch getLaunch() {
        return launch;
    }

    DapConnection dap() {
        return adapter.connection();
    }

    /**
     * Starts `vmdbg dap` and runs the DAP start-up: initialize, launch (or
     * attach), the breakpoints once the adapter is `initialized`, then
     * configurationDone. Throws with the adapter's own message when it
     * refuses the configuration.
     */
    public void start(String vmdbg, Map<String, String> env, String request, Map<String, Object> arguments,
            IProgressMonitor monitor) throws CoreException {
        try {
            adapter = DapAdapter.start(vmdbg, env, msg -> events.execute(() -> onEvent(msg)),
                line -> console.err().append(line + "\n"),
                reason -> events.execute(this::adapterGone));
        } catch (DapException e) {
            throw coreError(e.getMessage());
        }
        attach = request.equals("attach");
        try {
            monitor.subTask("initialize");
            Map<String, Object> init = new LinkedHashMap<>();
            init.put("clientID", "eclipse");
            init.put("clientName", "Eclipse");
            init.put("adapterID", "vmdbg");
            init.put("pathFormat", "path");
            init.put("linesStartAt1", true);
            init.put("columnsStartAt1", true);
            init.put("supportsProgressReporting", true);
            capabilities = dap().call("initialize", init, REQUEST_MS);
            DebugPlugin.getDefault().getBreakpointManager().addBreakpointListener(this);
            monitor.subTask(request + " (booting the VM)");
            CompletableFuture<JsonObject> launched = dap().request(request, arguments);
            // A refused launch answers before `initialized` ever comes.
            CompletableFuture.anyOf(initialized, launched).get(LAUNCH_MS, TimeUnit.MILLISECONDS);
            if (launched.isCompletedExceptionally()) launched.join();
            initialized.get(LAUNCH_MS, TimeUnit.MILLISECONDS);
            for (String path : breakpointPaths()) sendBreakpoints(path);
            if (!enabled(VmdbgFunctionBreakpoint.class, f -> true).isEmpty()) sendFunctionBreakpoints();
            dap().call("configurationDone", null, REQUEST_MS);
            launched.get(LAUNCH_MS, TimeUnit.MILLISECONDS);
            // A guest that runs without stopping still shows its threads (and can be suspended).
            events.execute(this::refreshThreads);
        } catch (DapException e) {
            fail(e.getMessage());
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.CompletionException e) {
            Throwable c = e.getCause() == null ? e : e.getCause();
            fail(c instanceof DapException ? c.getMessage() : request + ": " + c);
        } catch (java.util.concurrent.TimeoutException e) {
            fail(request + ": the VM did not come up within " + LAUNCH_MS / 1000 + " s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail(request + ": interrupted");
        }
    }

    private void fail(String message) throws CoreException {
        adapter.destroy();
        events.execute(this::adapterGone);
        throw coreError("vmdbg: " + message);
    }

    private Set<String> breakpointPaths() {
        Set<String> paths = new TreeSet<>();
        for (IBreakpoint b : DebugPlugin.getDefault().getBreakpointManager().getBreakpoints(MODEL_ID)) {
            if (b instanceof VmdbgLineBreakpoint v && !v.path().isEmpty()) paths.add(v.path());
        }
        return paths;
    }

    /** Sends the breakpoints of one file, as DAP wants them: the whole set at once. */
    private void sendBreakpoints(String path) throws DapException {
        List<VmdbgLineBreakpoint> list = enabled(VmdbgLineBreakpoint.class, v -> v.path().equals(path));
        JsonArray lines = new JsonArray();
        for (VmdbgLineBreakpoint v : list) {
            JsonObject o = new JsonObject();
            o.addProperty("line", v.getMarker().getAttribute(org.eclipse.core.resources.IMarker.LINE_NUMBER, 0));
            BreakpointOptions.addTo(o, v, true);
            lines.add(o);
        }
        JsonObject source = new JsonObject();
        source.addProperty("path", path);
        JsonObject args = new JsonObject();
        args.add("source", source);
        args.add("breakpoints", lines);
        JsonObject body = dap().call("setBreakpoints", args, REQUEST_MS);
        record(list, body, i -> new java.io.File(path).getName() + ":" + lines.get(i).getAsJsonObject().get("line").getAsInt());
    }

    /** Sends every function breakpoint (DAP's setFunctionBreakpoints: the whole set at once). */
    private void sendFunctionBreakpoints() throws DapException {
        List<VmdbgFunctionBreakpoint> list = enabled(VmdbgFunctionBreakpoint.class, f -> !f.function().isEmpty());
        JsonArray functions = new JsonArray();
        for (VmdbgFunctionBreakpoint f : list) {
            JsonObject o = new JsonObject();
            o.addProperty("name", f.function());
            BreakpointOptions.addTo(o, f, false);
            functions.add(o);
        }
        JsonObject args = new JsonObject();
        args.add("breakpoints", functions);
        JsonObject body = dap().call("setFunctionBreakpoints", args, REQUEST_MS);
        record(list, body, i -> list.get(i).function() + "()");
    }

    /** The enabled vmdbg breakpoints of a type that pass a test (none while the manager skips all). */
    private <T extends IBreakpoint> List<T> enabled(Class<T> type, java.util.function.Predicate<T> test) {
        IBreakpointManager manager = DebugPlugin.getDefault().getBreakpointManager();
        List<T> list = new ArrayList<>();
        for (IBreakpoint b : manager.getBreakpoints(MODEL_ID)) {
            try {
                if (type.isInstance(b) && test.test(type.cast(b)) && b.isEnabled() && manager.isEnabled()) list.add(type.cast(b));
            } catch (CoreException e) {
                // A breakpoint whose marker is gone is not sent.
            }
        }
        return list;
    }

    /** Keeps the adapter's answers to a setBreakpoints-like request, in the order the breakpoints were sent. */
    private void record(List<? extends IBreakpoint> list, JsonObject body, java.util.function.IntFunction<String> label) {
        JsonArray answers = body.getAsJsonArray("breakpoints");
        byDapId.values().removeIf(list::contains);
        for (int i = 0; i < list.size() && i < answers.size(); i++) {
            JsonObject a = answers.get(i).getAsJsonObject();
            // Said in the console rather than on the marker: changing the marker would send the breakpoints again.
            if (a.has("verified") && !a.get("verified").getAsBoolean()) {
                console.err().append("vmdbg: breakpoint " + label.apply(i) + " is not set: " + str(a, "message") + "\n");
            }
            if (a.has("id")) byDapId.put(a.get("id").getAsInt(), list.get(i));
            // Last: a reader of breakpointState then also sees the console line above.
            dapState.put(list.get(i), a);
        }
    }

    /** The adapter's answer for a breakpoint (verified, line, message), or null before it was sent. */
    public JsonObject breakpointState(IBreakpoint b) {
        return dapState.get(b);
    }

    public VmdbgProcess program() {
        return program;
    }

    public VmdbgProcess console() {
        return console;
    }

    /** Completes when the session has ended (terminated event, or the adapter went away). */
    public CompletableFuture<Void> whenEnded() {
        return ended;
    }

    private void onEvent(JsonObject msg) {
        String event = msg.get("event").getAsString();
        JsonObject body = msg.has("body") && msg.get("body").isJsonObject() ? msg.getAsJsonObject("body") : new JsonObject();
        switch (event) {
            case "initialized" -> initialized.complete(null);
            case "stopped" -> onStopped(body);
            case "continued" -> onContinued(body);
            case "thread" -> refreshThreads();
            case "output" -> onOutput(body);
            case "exited" -> program.setExitValue(body.get("exitCode").getAsInt());
            case "terminated" -> end();
            case "progressStart" -> console.out().append("[vmdbg] " + str(body, "title")
                + (body.has("message") ? ": " + str(body, "message") : "") + "\n");
            case "progressUpdate" -> {
                if (body.has("message")) console.out().append("[vmdbg] " + str(body, "message") + "\n");
            }
            default -> { }
        }
    }

    private static String str(JsonObject o, String key) {
        return o.has(key) && !o.get(key).isJsonNull() ? o.get(key).getAsString() : "";
    }

    private void onOutput(JsonObject body) {
        String category = body.has("category") ? body.get("category").getAsString() : "console";
        String text = str(body, "output");
        switch (category) {
            case "stdout" -> program.out().append(text);
            case "stderr" -> program.err().append(text);
            case "telemetry" -> { }
            default -> console.out().append(text);
        }
    }

    private void onStopped(JsonObject body) {
        refreshThreads();
        String reason = str(body, "reason");
        Integer threadId = body.has("threadId") ? body.get("threadId").getAsInt() : null;
        boolean all = body.has("allThreadsStopped") && body.get("allThreadsStopped").getAsBoolean();
        List<IBreakpoint> hit = new ArrayList<>();
        if (body.has("hitBreakpointIds")) {
            for (JsonElement id : body.getAsJsonArray("hitBreakpointIds")) {
                IBreakpoint b = byDapId.get(id.getAsInt());
                if (b != null) hit.add(b);
            }
        }
        int detail = switch (reason) {
            case "breakpoint", "function breakpoint", "data breakpoint", "instruction breakpoint" -> DebugEvent.BREAKPOINT;
            case "step" -> DebugEvent.STEP_END;
            case "pause" -> DebugEvent.CLIENT_REQUEST;
            default -> DebugEvent.UNSPECIFIED;
        };
        List<DebugEvent> fired = new ArrayList<>();
        VmdbgThread focus = null;
        synchronized (threads) {
            if (threadId == null && !threads.isEmpty()) threadId = threads.keySet().iterator().next();
            for (VmdbgThread t : threads.values()) {
                if (t.id() == threadId) {
                    t.suspended(reason, hit.toArray(new IBreakpoint[0]));
                    focus = t;
                } else if (all) {
                    // Stopped with it, for no reason of its own: its label and frames change, but only the
                    // stopped thread suspends, so the Debug view selects that one (it selects the top frame
                    // of every suspend, in an order of its own).
                    t.suspended(null, new IBreakpoint[0]);
                    fired.add(new DebugEvent(t, DebugEvent.CHANGE, DebugEvent.STATE));
                    fired.add(new DebugEvent(t, DebugEvent.CHANGE, DebugEvent.CONTENT));
                }
            }
        }
        if (focus != null) fired.add(new DebugEvent(focus, DebugEvent.SUSPEND, detail));
        fire(fired);
    }

    private void onContinued(JsonObject body) {
        boolean all = !body.has("allThreadsContinued") || body.get("allThreadsContinued").getAsBoolean();
        int threadId = body.has("threadId") ? body.get("threadId").getAsInt() : -1;
        List<DebugEvent> fired = new ArrayList<>();
        synchronized (threads) {
            for (VmdbgThread t : threads.values()) {
                if ((all || t.id() == threadId) && t.isSuspended()) {
                    t.resumed();
                    fired.add(new DebugEvent(t, DebugEvent.RESUME, DebugEvent.CLIENT_REQUEST));
                }
            }
        }
        fire(fired);
    }

    /** Called by a thread before it sends a run-control request: every thread runs (vmdbg resumes all). */
    void resumedAll(VmdbgThread actor, int detail, boolean step) {
        List<DebugEvent> fired = new ArrayList<>();
        synchronized (threads) {
            for (VmdbgThread t : threads.values()) {
                if (t == actor) continue;
                if (t.isSuspended()) {
                    t.resumed();
                    fired.add(new DebugEvent(t, DebugEvent.RESUME, DebugEvent.CLIENT_REQUEST));
                }
            }
        }
        actor.resumed();
        actor.setStepping(step);
        fired.add(new DebugEvent(actor, DebugEvent.RESUME, detail));
        fire(fired);
    }

    private void refreshThreads() {
        if (terminated) return;
        JsonArray list;
        try {
            list = dap().call("threads", null, REQUEST_MS).getAsJsonArray("threads");
        } catch (DapException e) {
            return;
        }
        List<DebugEvent> fired = new ArrayList<>();
        synchronized (threads) {
            Set<Integer> seen = new TreeSet<>();
            for (JsonElement e : list) {
                JsonObject o = e.getAsJsonObject();
                int id = o.get("id").getAsInt();
                seen.add(id);
                VmdbgThread t = threads.get(id);
                if (t == null) {
                    t = new VmdbgThread(this, id, o.get("name").getAsString());
                    threads.put(id, t);
                    fired.add(new DebugEvent(t, DebugEvent.CREATE));
                } else {
                    t.setName(o.get("name").getAsString());
                }
            }
            threads.entrySet().removeIf(en -> {
                if (seen.contains(en.getKey())) return false;
                fired.add(new DebugEvent(en.getValue(), DebugEvent.TERMINATE));
                return true;
            });
        }
        fire(fired);
    }

    private void fire(List<DebugEvent> list) {
        if (!list.isEmpty()) DebugPlugin.getDefault().fireDebugEventSet(list.toArray(new DebugEvent[0]));
    }

    private void adapterGone() {
        end();
    }

    /** The session is over: every element says so once. */
    private synchronized void end() {
        if (terminated) return;
        terminated = true;
        DebugPlugin.getDefault().getBreakpointManager().removeBreakpointListener(this);
        List<DebugEvent> fired = new ArrayList<>();
        synchronized (threads) {
            for (VmdbgThread t : threads.values()) fired.add(new DebugEvent(t, DebugEvent.TERMINATE));
            threads.clear();
        }
        fired.add(new DebugEvent(this, DebugEvent.TERMINATE));
        fire(fired);
        program.markTerminated();
        console.markTerminated();
        // The adapter exits after `disconnect`; one that hangs must not outlive the session.
        DapAdapter a = adapter;
        if (a != null) {
            if (a.connection().isOpen()) a.connection().request("disconnect", Map.of("terminateDebuggee", !attach));
            CompletableFuture.runAsync(() -> {
                try {
                    if (!a.process().waitFor(10, TimeUnit.SECONDS)) a.destroy();
                } catch (InterruptedException e) {
                    a.destroy();
                }
            });
        }
        ended.complete(null);
    }

    @Override
    public IProcess getProcess() {
        return program;
    }

    @Override
    public IThread[] getThreads() {
        synchronized (threads) {
            return threads.values().toArray(new IThread[0]);
        }
    }

    @Override
    public boolean hasThreads() {
        synchronized (threads) {
            return !threads.isEmpty();
        }
    }

    @Override
    public String getName() {
        return name;
    }

    @Override
    public boolean supportsBreakpoint(IBreakpoint breakpoint) {
        return breakpoint instanceof VmdbgLineBreakpoint || breakpoint instanceof VmdbgFunctionBreakpoint;
    }

    @Override
    public boolean canTerminate() {
        return !terminated;
    }

    @Override
    public boolean isTerminated() {
        return terminated;
    }

    /** Ends the debuggee (the VM of a launch) and the session. */
    @Override
    public void terminate() throws DebugException {
        if (terminated) return;
        boolean viaTerminate = capabilities.has("supportsTerminateRequest") && capabilities.get("supportsTerminateRequest").getAsBoolean();
        try {
            if (viaTerminate) dap().call("terminate", null, REQUEST_MS);
            else dap().call("disconnect", Map.of("terminateDebuggee", true), REQUEST_MS);
            ended.get(15, TimeUnit.SECONDS);
        } catch (Exception e) {
            // The adapter did not end the session in time: end it here.
        }
        events.execute(this::end);
    }

    @Override
    public boolean canResume() {
        return !terminated && anyThread(true);
    }

    @Override
    public boolean canSuspend() {
        return !terminated && anyThread(false);
    }

    private boolean anyThread(boolean suspended) {
        for (IThread t : getThreads()) if (t.isSuspended() == suspended) return true;
        return false;
    }

    @Override
    public boolean isSuspended() {
        return !terminated && anyThread(true) && !anyThread(false);
    }

    @Override
    public void resume() throws DebugException {
        for (IThread t : getThreads()) {
            if (t.isSuspended()) {
                t.resume();
                return;
            }
        }
    }

    @Override
    public void suspend() throws DebugException {
        IThread[] ts = getThreads();
        if (ts.length > 0) ts[0].suspend();
    }

    @Override
    public void breakpointAdded(IBreakpoint breakpoint) {
        resend(breakpoint);
    }

    @Override
    public void breakpointRemoved(IBreakpoint breakpoint, IMarkerDelta delta) {
        dapState.remove(breakpoint);
        if (breakpoint instanceof VmdbgLineBreakpoint) {
            String path = delta != null ? delta.getAttribute(VmdbgLineBreakpoint.PATH, "") : "";
            if (!path.isEmpty()) resendLater(() -> sendBreakpoints(path), "breakpoints in " + path);
        } else if (breakpoint instanceof VmdbgFunctionBreakpoint) {
            resendLater(this::sendFunctionBreakpoints, "function breakpoints");
        }
    }

    @Override
    public void breakpointChanged(IBreakpoint breakpoint, IMarkerDelta delta) {
        resend(breakpoint);
    }

    private void resend(IBreakpoint breakpoint) {
        if (breakpoint instanceof VmdbgLineBreakpoint v && !v.path().isEmpty()) {
            resendLater(() -> sendBreakpoints(v.path()), "breakpoints in " + v.path());
        } else if (breakpoint instanceof VmdbgFunctionBreakpoint) {
            resendLater(this::sendFunctionBreakpoints, "function breakpoints");
        }
    }

    private interface Send {
        void run() throws DapException;
    }

    /** Sends a breakpoint set from the event thread, once the adapter takes breakpoints. */
    private void resendLater(Send send, String what) {
        if (terminated || !initialized.isDone()) return;
        events.execute(() -> {
            try {
                send.run();
            } catch (DapException e) {
                console.err().append("vmdbg: " + what + ": " + e.getMessage() + "\n");
            }
        });
    }

    @Override
    public boolean canDisconnect() {
        return !terminated;
    }

    /** Leaves the session: an attached target runs on; a launched VM ends with the session. */
    @Override
    public void disconnect() throws DebugException {
        if (terminated) return;
        try {
            dap().call("disconnect", Map.of("terminateDebuggee", !attach), REQUEST_MS);
        } catch (DapException e) {
            // Disconnecting from an adapter that is already gone is done.
        }
        events.execute(this::end);
    }

    @Override
    public boolean isDisconnected() {
        return terminated;
    }

    @Override
    public boolean supportsStorageRetrieval() {
        return false;
    }

    @Override
    public IMemoryBlock getMemoryBlock(long startAddress, long length) throws DebugException {
        throw new DebugException(new org.eclipse.core.runtime.Status(org.eclipse.core.runtime.IStatus.ERROR, PLUGIN_ID,
            "memory blocks are not supported by the vmdbg Eclipse plugin yet"));
    }
}
