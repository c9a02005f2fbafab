package vmdbg.eclipse.testrun;

import java.util.ArrayList;
import java.util.List;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.ILaunchConfiguration;

import vmdbg.eclipse.dap.DapAdapter;
import vmdbg.eclipse.dap.DapException;
import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.model.VmdbgDebugElement;

/** The "vmdbg Tests" configuration's attributes and the `vmdbg test` command line they make. */
public final class TestsAttributes {
    public static final String TYPE_ID = "vmdbg.eclipse.testsLaunchType";
    private static final String P = "vmdbg.eclipse.tests.";
    /** The libtest or GoogleTest binary. */
    public static final String BINARY = P + "binary";
    /** `--setup` commands, run once in the VM before the snapshot; one list entry each. */
    public static final String SETUP = P + "setup";
    /** "", "kvm" or "qemu". */
    public static final String ENGINE = P + "engine";
    /** Filter arguments after the binary, split at spaces (e.g. `marker --skip marker_two`). */
    public static final String FILTER = P + "filter";
    /** Set on the re-run of one test: its results go into the run the view shows. */
    public static final String RERUN = P + "rerun";

    private TestsAttributes() {
    }

    /** The command line; with `junit`, vmdbg also writes its JUnit XML report there. */
    public static List<String> command(ILaunchConfiguration c, java.io.File junit) throws CoreException {
        String binary = c.getAttribute(BINARY, "").trim();
        if (binary.isEmpty()) throw VmdbgDebugElement.coreError("vmdbg: the configuration '" + c.getName() + "' has no test binary");
        if (!new java.io.File(binary).isFile()) throw VmdbgDebugElement.coreError("vmdbg: test binary " + binary + " does not exist");
        List<String> cmd = new ArrayList<>();
        try {
            cmd.add(DapAdapter.resolve(c.getAttribute(LaunchAttributes.VMDBG_PATH, "").isBlank() ? LaunchAttributes.vmdbgPath(c)
                : c.getAttribute(LaunchAttributes.VMDBG_PATH, "")));
        } catch (DapException e) {
            throw VmdbgDebugElement.coreError(e.getMessage());
        }
        cmd.add("test");
        String engine = c.getAttribute(ENGINE, "").trim();
        if (!engine.isEmpty() && !"auto".equals(engine)) {
            cmd.add("--engine");
            cmd.add(engine);
        }
        for (String s : c.getAttribute(SETUP, List.of())) {
            if (s.isBlank()) continue;
            cmd.add("--setup");
            cmd.add(s);
        }
        if (junit != null) {
            cmd.add("--junit");
            cmd.add(junit.getPath());
        }
        cmd.add("--format");
        cmd.add("json");
        cmd.add("--");
        cmd.add(binary);
        for (String f : c.getAttribute(FILTER, "").trim().split("\\s+")) {
            if (!f.isEmpty()) cmd.add(f);
        }
        return cmd;
    }
}
