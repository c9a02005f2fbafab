package vmdbg.eclipse.tests;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.eclipse.debug.core.DebugEvent;

import vmdbg.eclipse.model.VmdbgStackFrame;
import vmdbg.eclipse.model.VmdbgThread;

/** The end-to-end scenarios, each against the real `vmdbg dap` and a real VM. */
final class Scenarios {
    private static final long STEP_MS = 30_000;

    private Scenarios() {
    }

    /** A bare-metal kernel on vmdbg-vmm (host tier): breakpoint, locals, registers, step over and out, exit code, serial console. */
    static String kernel() throws Exception {
        int leaf = Env.marker(Env.callsC(), "leaf");
        try (Session s = new Session()) {
            VmdbgThread thread = s.launchToBreakpoint(Session.kernelConfig(), Env.callsC(), leaf);
            VmdbgStackFrame frame = Session.top(thread);
            Check.equal("leaf", frame.functionName(), "function at the breakpoint");
            Check.equal(leaf, frame.getLineNumber(), "line at the breakpoint");
            Check.equal(Env.callsC().getAbsolutePath(), frame.sourcePath(), "source path");
            Check.equal("3", Session.value(frame, "depth"), "local depth");
            Check.equal("3", Session.value(frame, "level"), "argument level");
            Check.that(frame.getRegisterGroups().length > 0 && registerNamed(frame, "rip"), "a Registers group with rip");

            thread.stepOver();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            Check.equal(leaf + 1, Session.top(thread).getLineNumber(), "line after step over");
            thread.stepReturn();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            Check.equal("accumulate", Session.top(thread).functionName(), "function after step return");
            Check.equal(Env.marker(Env.callsC(), "call-leaf"), Session.top(thread).getLineNumber(), "line after step return");

            s.runToEnd(thread, STEP_MS);
            String console = s.target.console().out().getContents();
            Check.that(console.contains("calls: start"), "the guest's serial output reaches the VM console: " + console);
            Matcher m = Pattern.compile("calls: exit=(\\d+)").matcher(console);
            Check.that(m.find(), "the kernel printed its exit value: " + console);
            Check.equal(Integer.valueOf(m.group(1)), s.target.program().exitCode(), "exit code");
            Check.that(s.launch.isTerminated(), "the launch is terminated after the guest exited");
            return "launch to first stop " + s.firstStopMs + " ms";
        }
    }

    /** A C program in a fresh Linux VM: breakpoint, a local before and after a step, stdout, exit code. */
    static String program() throws Exception {
        int call = Env.marker(Env.localsC(), "call");
        try (Session s = new Session()) {
            VmdbgThread thread = s.launchToBreakpoint(Session.programConfig(), Env.localsC(), call);
            VmdbgStackFrame frame = Session.top(thread);
            Check.equal("main", frame.functionName(), "function at the breakpoint");
            Check.equal(call, frame.getLineNumber(), "line at the breakpoint");
            Check.equal("0", Session.value(frame, "total"), "total before the call");

            thread.stepOver();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            frame = Session.top(thread);
            Check.equal(Env.marker(Env.localsC(), "after_call"), frame.getLineNumber(), "line after step over");
            Check.equal("25", Session.value(frame, "total"), "total after the call");

            s.runToEnd(thread, STEP_MS * 4);
            Check.equal(7, s.target.program().exitCode(), "the program's exit code");
            String out = s.target.program().out().getContents();
            Check.that(out.contains("total=25"), "the program's stdout reaches its console: '" + out + "'");
            return "launch to first stop " + s.firstStopMs + " ms";
        }
    }

    private static boolean registerNamed(VmdbgStackFrame frame, String name) throws Exception {
        for (var group : frame.getRegisterGroups()) {
            for (var r : group.getRegisters()) if (r.getName().equals(name)) return true;
        }
        return false;
    }
}
