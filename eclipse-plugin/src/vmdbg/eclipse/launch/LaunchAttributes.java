package vmdbg.eclipse.launch;

import java.io.File;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.core.runtime.Platform;
import org.eclipse.debug.core.ILaunchConfiguration;

import vmdbg.eclipse.model.VmdbgDebugElement;

/**
 * The vmdbg launch configuration's attributes and how they become the
 * `launch`/`attach` arguments of dap-server/schema/launch.schema.json.
 * Validation here is only what Eclipse needs to give a clear message
 * before starting anything; vmdbg checks the rest and its message is shown.
 */
public final class LaunchAttributes {
    public static final String TYPE_ID = "vmdbg.eclipse.launchType";
    private static final String P = "vmdbg.eclipse.";
    /** "program", "kernel" or "attach": what the session debugs. */
    public static final String MODE = P + "mode";
    public static final String PROGRAM = P + "program";
    /** The program's arguments, one list entry each. */
    public static final String ARGS = P + "args";
    public static final String ENV = P + "env";
    public static final String CWD = P + "cwd";
    public static final String ENGINE = P + "engine";
    public static final String KERNEL = P + "kernel";
    public static final String SYMBOLS = P + "symbols";
    public static final String CMDLINE = P + "cmdline";
    public static final String MEM = P + "mem";
    public static final String GDB_SERVER = P + "gdbServer";
    public static final String STOP_ON_ENTRY = P + "stopOnEntry";
    /** Path of the vmdbg binary; empty: the vmdbgPath preference, else PATH. */
    public static final String VMDBG_PATH = P + "vmdbgPath";
    /** Path of vmdbg-vmm for kernel sessions; empty: vmdbg's own search. */
    public static final String VMM_PATH = P + "vmmPath";
    /** Preference (instance scope, node vmdbg.eclipse) giving vmdbg's path for every configuration. */
    public static final String PREF_VMDBG_PATH = "vmdbgPath";

    public static final String MODE_PROGRAM = "program";
    public static final String MODE_KERNEL = "kernel";
    public static final String MODE_ATTACH = "attach";

    private LaunchAttributes() {
    }

    public static String request(ILaunchConfiguration c) throws CoreException {
        return MODE_ATTACH.equals(c.getAttribute(MODE, MODE_PROGRAM)) ? "attach" : "launch";
    }

    /** The DAP arguments for this configuration, or a CoreException saying what is missing. */
    public static Map<String, Object> dapArguments(ILaunchConfiguration c) throws CoreException {
        String mode = c.getAttribute(MODE, MODE_PROGRAM);
        Map<String, Object> a = new LinkedHashMap<>();
        a.put("name", c.getName());
        switch (mode) {
            case MODE_PROGRAM -> {
                String program = required(c, PROGRAM, "program");
                existing(program, "program");
                a.put("program", program);
                List<String> args = c.getAttribute(ARGS, List.of());
                if (!args.isEmpty()) a.put("args", args);
                Map<String, String> env = c.getAttribute(ENV, Map.of());
                if (!env.isEmpty()) a.put("env", env);
                putIfSet(a, "cwd", c.getAttribute(CWD, ""));
                putIfSet(a, "engine", c.getAttribute(ENGINE, ""));
            }
            case MODE_KERNEL -> {
                String kernel = required(c, KERNEL, "kernel");
                existing(kernel, "kernel");
                a.put("kernel", kernel);
                putIfSet(a, "symbols", c.getAttribute(SYMBOLS, ""));
                putIfSet(a, "cmdline", c.getAttribute(CMDLINE, ""));
                putIfSet(a, "mem", c.getAttribute(MEM, ""));
                putIfSet(a, "vmm", c.getAttribute(VMM_PATH, ""));
            }
            case MODE_ATTACH -> {
                a.put("gdbServer", required(c, GDB_SERVER, "gdb server address (host:port or unix:/path)"));
                String symbols = required(c, SYMBOLS, "symbols (the ELF with DWARF)");
                existing(symbols, "symbols");
                a.put("symbols", symbols);
            }
            default -> throw VmdbgDebugElement.coreError("vmdbg: unknown session kind '" + mode + "' (program, kernel or attach)");
        }
        if (c.hasAttribute(STOP_ON_ENTRY)) a.put("stopOnEntry", c.getAttribute(STOP_ON_ENTRY, false));
        return a;
    }

    /** The configured vmdbg path: the launch attribute, else the preference; empty means PATH. */
    public static String vmdbgPath(ILaunchConfiguration c) throws CoreException {
        String path = c.getAttribute(VMDBG_PATH, "");
        if (!path.isBlank()) return path;
        return Platform.getPreferencesService().getString(VmdbgDebugElement.PLUGIN_ID, PREF_VMDBG_PATH, "", null);
    }

    private static String required(ILaunchConfiguration c, String key, String what) throws CoreException {
        String v = c.getAttribute(key, "").trim();
        if (v.isEmpty()) throw VmdbgDebugElement.coreError("vmdbg: the launch configuration '" + c.getName() + "' has no " + what);
        return v;
    }

    private static void existing(String path, String what) throws CoreException {
        if (!new File(path).isFile()) throw VmdbgDebugElement.coreError("vmdbg: " + what + " " + path + " does not exist");
    }

    private static void putIfSet(Map<String, Object> a, String key, String value) {
        if (value != null && !value.isBlank()) a.put(key, value.trim());
    }
}
