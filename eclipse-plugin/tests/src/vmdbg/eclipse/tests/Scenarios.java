package vmdbg.eclipse.tests;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.eclipse.core.resources.ResourcesPlugin;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.DebugEvent;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.debug.core.model.IBreakpoint;

import com.google.gson.JsonObject;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.model.VmdbgDebugElement;
import vmdbg.eclipse.model.BreakpointOptions;
import vmdbg.eclipse.model.VmdbgFunctionBreakpoint;
import vmdbg.eclipse.model.VmdbgLineBreakpoint;

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
            VmdbgStackFrame frame = Session.at(thread, "leaf", leaf);
            Check.equal(Env.callsC().getAbsolutePath(), frame.sourcePath(), "source path");
            Check.equal("3", Session.value(frame, "depth"), "local depth");
            Check.equal("3", Session.value(frame, "level"), "argument level");
            Check.that(frame.getRegisterGroups().length > 0 && registerNamed(frame, "rip"), "a Registers group with rip");

            thread.stepOver();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            Session.at(thread, "leaf", leaf + 1);
            thread.stepReturn();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            Session.at(thread, "accumulate", Env.marker(Env.callsC(), "call-leaf"));

            // Breakpoints added while the session runs reach vmdbg: one it can set, one in a file the kernel lacks.
            int base = Env.marker(Env.callsC(), "fact-base");
            var added = new VmdbgLineBreakpoint(ResourcesPlugin.getWorkspace().getRoot(), Env.callsC().getAbsolutePath(), base);
            var foreign = new VmdbgLineBreakpoint(ResourcesPlugin.getWorkspace().getRoot(), Env.localsC().getAbsolutePath(), 10);
            JsonObject state = awaitState(s, foreign);
            Check.equal(false, state.get("verified").getAsBoolean(), "a breakpoint in a file the kernel lacks is not verified");
            Check.that(s.target.console().err().getContents().contains("locals.c:10 is not set"),
                "the VM console says why: " + s.target.console().err().getContents());
            Check.equal(true, awaitState(s, added).get("verified").getAsBoolean(), "the added breakpoint is verified");

            // Options set on breakpoints that exist (as the Properties page does) reach vmdbg: a logpoint
            // prints and does not stop, a conditional breakpoint stops when its condition holds, a function
            // breakpoint with a hit condition stops at that hit.
            // vmdbg-vmm has 4 hardware breakpoints (DR0-DR3): the first one, passed, makes room.
            VmdbgLineBreakpoint.find(Env.callsC().getAbsolutePath(), leaf).delete();
            var root = ResourcesPlugin.getWorkspace().getRoot();
            var logpoint = new VmdbgLineBreakpoint(root, Env.callsC().getAbsolutePath(), Env.marker(Env.callsC(), "after-accumulate"));
            setOption(s, logpoint, BreakpointOptions.LOG_MESSAGE, "compute r={r}");
            int recurse = Env.marker(Env.callsC(), "fact-recurse");
            var conditional = new VmdbgLineBreakpoint(root, Env.callsC().getAbsolutePath(), recurse);
            setOption(s, conditional, BreakpointOptions.CONDITION, "n == 3");
            var function = new VmdbgFunctionBreakpoint("factorial");
            setOption(s, function, BreakpointOptions.HIT_CONDITION, "== 4");
            Check.equal(true, awaitState(s, function).get("verified").getAsBoolean(), "the function breakpoint is verified");

            thread.resume();
            thread = s.suspended(DebugEvent.BREAKPOINT, STEP_MS);
            Check.that(Session.hit(thread, conditional), "the conditional breakpoint hit (" + thread.getName() + ")");
            Check.equal("3", Session.value(Session.at(thread, "factorial", recurse), "n"), "n where `n == 3` stopped");
            Matcher logged = Pattern.compile("compute r=(-?\\d+)\n").matcher(s.target.console().out().getContents());
            Check.that(logged.find(), "the logpoint printed to the VM console: " + s.target.console().out().getContents());

            thread.resume();
            thread = s.suspended(DebugEvent.BREAKPOINT, STEP_MS);
            Check.that(Session.hit(thread, function), "the function breakpoint hit (" + thread.getName() + ")");
            Check.equal("factorial", Session.top(thread).functionName(), "function of the function breakpoint");
            Check.equal("2", Session.value(Session.top(thread), "n"), "n at factorial's 4th call (hit condition == 4)");

            thread.resume();
            thread = s.suspended(DebugEvent.BREAKPOINT, STEP_MS);
            Check.that(Session.hit(thread, added), "the added breakpoint hit");
            Session.at(thread, "factorial", base);

            s.runToEnd(thread, STEP_MS);
            String console = s.target.console().out().getContents();
            Check.that(console.contains("calls: start"), "the guest's serial output reaches the VM console: " + console);
            Matcher computed = Pattern.compile("calls: compute=(\\d+)").matcher(console);
            Check.that(computed.find(), "the kernel printed compute's result: " + console);
            Check.equal(Integer.parseInt(computed.group(1)) - 1, Integer.parseInt(logged.group(1)),
                "the logpoint's {r} (compute returns r + 1)");
            Matcher m = Pattern.compile("calls: exit=(\\d+)").matcher(console);
            Check.that(m.find(), "the kernel printed its exit value: " + console);
            Check.equal(Integer.valueOf(m.group(1)), s.target.program().exitCode(), "exit code");
            Check.that(s.launch.isTerminated(), "the launch is terminated after the guest exited");
            return "launch to first stop " + s.firstStopMs + " ms";
        }
    }

    /** A C program in a fresh Linux VM: breakpoint, step into and out of a call, a local before and after a step over, stdout, exit code. */
    static String program() throws Exception {
        int call = Env.marker(Env.localsC(), "call");
        try (Session s = new Session()) {
            VmdbgThread thread = s.launchToBreakpoint(Session.programConfig(), Env.localsC(), call);
            VmdbgStackFrame frame = Session.at(thread, "main", call);
            Check.equal("0", Session.value(frame, "total"), "total before the call");

            thread.stepInto();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            frame = Session.at(thread, "square", Env.marker(Env.localsC(), "square"));
            Check.equal("3", Session.value(frame, "v"), "square's argument");
            thread.stepReturn();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            Check.equal("main", Session.top(thread).functionName(), "function after step return");

            thread.stepOver();
            thread = s.suspended(DebugEvent.STEP_END, STEP_MS);
            frame = Session.at(thread, "main", Env.marker(Env.localsC(), "after_call"));
            Check.equal("25", Session.value(frame, "total"), "total after the call");

            s.runToEnd(thread, STEP_MS * 4);
            Check.equal(7, s.target.program().exitCode(), "the program's exit code");
            String out = s.target.program().out().getContents();
            Check.that(out.contains("total=25"), "the program's stdout reaches its console: '" + out + "'");
            return "launch to first stop " + s.firstStopMs + " ms";
        }
    }

    /** The adapter's answer for a breakpoint sent during the session (sent from the event thread, so wait for it). */
    private static JsonObject awaitState(Session s, IBreakpoint b) throws Exception {
        return awaitNewState(s, b, null);
    }

    /** The adapter's answer for a breakpoint, once it is another than `before` (a resend after a change). */
    private static JsonObject awaitNewState(Session s, IBreakpoint b, JsonObject before) throws Exception {
        return Wait.value("vmdbg's answer for the breakpoint " + b.getMarker().getAttribute(org.eclipse.core.resources.IMarker.MESSAGE, ""),
            STEP_MS, () -> {
                JsonObject state = s.target.breakpointState(b);
                return state != null && state != before ? state : null;
            });
    }

    /** Sets a breakpoint option on its marker, as the Properties page does, and waits until vmdbg has it. */
    private static void setOption(Session s, IBreakpoint b, String option, String value) throws Exception {
        JsonObject before = awaitState(s, b);
        BreakpointOptions.set(b, option, value);
        JsonObject now = awaitNewState(s, b, before);
        Check.equal(true, now.get("verified").getAsBoolean(), option + " " + value + " is taken: " + now);
    }

    private static boolean registerNamed(VmdbgStackFrame frame, String name) throws Exception {
        for (var group : frame.getRegisterGroups()) {
            for (var r : group.getRegisters()) if (r.getName().equals(name)) return true;
        }
        return false;
    }

    /** Suspend interrupts a running guest (spin.elf loops until released) where it runs. */
    static String suspend() throws Exception {
        var manager = DebugPlugin.getDefault().getBreakpointManager();
        manager.removeBreakpoints(manager.getBreakpoints(VmdbgDebugElement.MODEL_ID), true);
        File spinC = new File(Env.callsC().getParentFile(), "spin.c");
        var wc = Session.config("spin kernel", LaunchAttributes.MODE_KERNEL);
        wc.setAttribute(LaunchAttributes.KERNEL, new File(Env.kernel().getParentFile(), "spin.elf").getPath());
        wc.setAttribute(LaunchAttributes.VMM_PATH, Env.bin("vmdbg-vmm").getPath());
        try (Session s = new Session()) {
            s.launch(wc.doSave());
            Wait.until("the guest printed 'spin: waiting' and its threads can be suspended", STEP_MS,
                () -> s.target.console().out().getContents().contains("spin: waiting") && s.target.canSuspend(),
                () -> s.target.getThreads().length + " threads; console: " + s.target.console().out().getContents());
            Check.that(!s.target.isSuspended(), "the guest runs");
            s.target.suspend();
            VmdbgThread thread = s.suspended(DebugEvent.CLIENT_REQUEST, STEP_MS);
            VmdbgStackFrame frame = Session.top(thread);
            Check.equal("kmain", frame.functionName(), "function where the guest was suspended");
            int loop = Env.marker(spinC, "spin-loop");
            Check.that(frame.getLineNumber() == loop || frame.getLineNumber() == loop - 1,
                "suspended in the spin loop (line " + (loop - 1) + " or " + loop + "), at " + frame.getName());
            return "suspended at " + frame.getName();
        }
    }

    /** Terminate while stopped ends the session and its VM: no vmdbg-vmm for the kernel is left. */
    static String terminate() throws Exception {
        try (Session s = new Session()) {
            s.launchToBreakpoint(Session.kernelConfig(), Env.callsC(), Env.marker(Env.callsC(), "leaf"));
            Check.that(!vmmProcesses().isEmpty(), "a vmdbg-vmm runs the kernel while stopped");
            s.launch.terminate();
            Check.that(s.target.isTerminated(), "the target is terminated");
            Check.that(s.launch.isTerminated(), "the launch is terminated (program and console processes too)");
            Wait.until("no vmdbg-vmm left after terminate", STEP_MS, () -> vmmProcesses().isEmpty(), () -> "vmdbg-vmm " + vmmProcesses());
            return "VM gone";
        }
    }

    /** Attach to vmdbg-vmm's gdb server: the breakpoint hits; disconnect leaves the guest running to its end. */
    static String attach() throws Exception {
        Path dir = Files.createTempDirectory("vmdbg-eclipse-attach");
        Path socket = dir.resolve("gdb.sock");
        Process vmm = new ProcessBuilder(Env.bin("vmdbg-vmm").getPath(), "--kernel", Env.kernel().getPath(),
            "--gdb", "unix:" + socket, "--wait-gdb").redirectErrorStream(true).start();
        try (Session s = new Session()) {
            Wait.until("vmdbg-vmm made its gdb socket " + socket, STEP_MS, () -> Files.exists(socket) || !vmm.isAlive(),
                () -> "");
            Check.that(Files.exists(socket), "vmdbg-vmm made its gdb socket " + socket + " (it ended with status "
                + (vmm.isAlive() ? "-" : vmm.exitValue()) + ")");
            ILaunchConfigurationWorkingCopy wc = Session.config("attach calls", LaunchAttributes.MODE_ATTACH);
            wc.setAttribute(LaunchAttributes.GDB_SERVER, "unix:" + socket);
            wc.setAttribute(LaunchAttributes.SYMBOLS, Env.kernel().getPath());
            wc.setAttribute(LaunchAttributes.STOP_ON_ENTRY, false);
            int leaf = Env.marker(Env.callsC(), "leaf");
            VmdbgThread thread = s.launchToBreakpoint(wc.doSave(), Env.callsC(), leaf);
            Session.at(thread, "leaf", leaf);
            Check.that(s.target.canDisconnect(), "an attached target can disconnect");
            s.target.disconnect();
            Check.that(vmm.waitFor(30, TimeUnit.SECONDS), "the guest ran on to its end after disconnect");
            String serial = new String(vmm.getInputStream().readAllBytes());
            Matcher m = Pattern.compile("calls: exit=(\\d+)").matcher(serial);
            Check.that(m.find(), "the guest printed its exit value: " + serial);
            Check.equal((Integer.parseInt(m.group(1)) << 1) | 1, vmm.exitValue(), "vmdbg-vmm's status after the guest ran on");
            return "first stop " + s.firstStopMs + " ms";
        } finally {
            vmm.destroyForcibly();
            Files.deleteIfExists(socket);
            Files.deleteIfExists(dir);
        }
    }

    /** Bad configurations are refused before anything starts, or with vmdbg's own message, never with a hang or a stack trace. */
    static String badInput() throws Exception {
        ILaunchConfigurationWorkingCopy noProgram = Session.config("no program", LaunchAttributes.MODE_PROGRAM);
        refused(noProgram, "has no program");
        noProgram.setAttribute(LaunchAttributes.PROGRAM, "/nonexistent/prog");
        refused(noProgram, "program /nonexistent/prog does not exist");
        ILaunchConfigurationWorkingCopy badVmdbg = Session.config("bad vmdbg", LaunchAttributes.MODE_KERNEL);
        badVmdbg.setAttribute(LaunchAttributes.KERNEL, Env.kernel().getPath());
        badVmdbg.setAttribute(LaunchAttributes.VMDBG_PATH, "/nonexistent/vmdbg");
        refused(badVmdbg, "vmdbg is not an executable file: /nonexistent/vmdbg");
        // Not an ELF: refused by vmdbg itself, whose words reach the user.
        ILaunchConfigurationWorkingCopy notElf = Session.config("not an ELF", LaunchAttributes.MODE_KERNEL);
        notElf.setAttribute(LaunchAttributes.KERNEL, Env.callsC().getPath());
        String said = refused(notElf, "vmdbg: launch: ");
        Check.that(said.contains("not an x86-64 ELF"), "the VMM's reason leads: " + said);
        return "vmdbg says: " + said;
    }

    private static String refused(ILaunchConfigurationWorkingCopy config, String expected) throws Exception {
        try (Session s = new Session()) {
            s.launch(config);
        } catch (CoreException e) {
            Check.that(e.getMessage().contains(expected), "error message '" + e.getMessage() + "' contains '" + expected + "'");
            return e.getMessage();
        }
        throw new AssertionError(config.getName() + ": the launch was not refused");
    }

    /** Process ids of the vmdbg-vmm processes running the test kernel. */
    private static List<String> vmmProcesses() throws IOException {
        List<String> found = new ArrayList<>();
        try (var procs = Files.list(Path.of("/proc"))) {
            for (Path p : (Iterable<Path>) procs::iterator) {
                if (!p.getFileName().toString().matches("\\d+")) continue;
                try {
                    String cmd = new String(Files.readAllBytes(p.resolve("cmdline"))).replace('\0', ' ');
                    if (cmd.contains("vmdbg-vmm") && cmd.contains(Env.kernel().getPath())) found.add(p.getFileName().toString());
                } catch (IOException e) {
                    // The process ended while being read.
                }
            }
        }
        return found;
    }
}
