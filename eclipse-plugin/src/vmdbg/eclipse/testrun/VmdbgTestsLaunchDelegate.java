package vmdbg.eclipse.testrun;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.core.runtime.IProgressMonitor;
import org.eclipse.debug.core.DebugPlugin;
import org.eclipse.debug.core.ILaunch;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.debug.core.ILaunchManager;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.launch.PrebuiltBinaryDelegate;
import vmdbg.eclipse.model.VmdbgDebugElement;

/**
 * Runs `vmdbg test --format json -- BINARY [filters]` for a "vmdbg Tests"
 * configuration and feeds its events, line by line as they arrive, into a
 * {@link TestRun}; vmdbg's progress lines (stderr) go to the launch's console.
 * Where JDT's JUnit core is installed, vmdbg also writes `--junit` XML,
 * imported into Eclipse's JUnit model when the run ends.
 */
public class VmdbgTestsLaunchDelegate extends PrebuiltBinaryDelegate {
    @Override
    public void launch(ILaunchConfiguration config, String mode, ILaunch launch, IProgressMonitor monitor) throws CoreException {
        File junit = JUnitImport.available() ? junitReport(config) : null;
        List<String> cmd = TestsAttributes.command(config, junit);
        boolean rerun = config.getAttribute(TestsAttributes.RERUN, false);
        TestRun run = rerun && TestRun.latest() != null ? TestRun.latest() : TestRun.begin(config);
        if (run == TestRun.latest() && rerun) run.restart();
        Process p;
        try {
            p = new ProcessBuilder(cmd).start();
        } catch (IOException e) {
            run.finished(-1, "cannot start " + cmd.get(0) + ": " + e.getMessage());
            throw VmdbgDebugElement.coreError("vmdbg: cannot start " + cmd.get(0) + ": " + e.getMessage());
        }
        String binary = new File(config.getAttribute(TestsAttributes.BINARY, "")).getName();
        TestsProcess process = new TestsProcess(launch, "vmdbg test " + binary, p);
        launch.addProcess(process);
        StringBuilder tail = new StringBuilder();
        Thread err = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null;) {
                    process.progress().append(line + "\n");
                    synchronized (tail) {
                        tail.append(line).append('\n');
                        if (tail.length() > 2000) tail.delete(0, tail.length() - 2000);
                    }
                }
            } catch (IOException e) {
                // the process ended
            }
        }, "vmdbg test stderr");
        Thread out = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null;) run.event(line);
            } catch (IOException e) {
                // the process ended
            }
            int code;
            try {
                code = p.waitFor();
                err.join(5000);
            } catch (InterruptedException e) {
                code = -1;
            }
            String t;
            synchronized (tail) {
                t = tail.toString();
            }
            if (junit != null && (code == 0 || code == 101)) run.importJUnit(junit);
            run.finished(code, t);
            process.ended(code);
        }, "vmdbg test events");
        err.setDaemon(true);
        out.setDaemon(true);
        err.start();
        out.start();
        vmdbg.eclipse.ui.VmdbgTestsView.showLater();
    }

    /** Where vmdbg writes this configuration's JUnit report: the plugin's state area, one file per configuration. */
    private static File junitReport(ILaunchConfiguration config) {
        File dir = org.eclipse.core.runtime.Platform.getStateLocation(org.osgi.framework.FrameworkUtil.getBundle(VmdbgTestsLaunchDelegate.class))
            .append("junit").toFile();
        dir.mkdirs();
        return new File(dir, configName(config.getName()) + ".xml");
    }

    /** Re-runs one test of the configuration (`-- BINARY NAME --exact`); its result replaces the test's entry. */
    public static ILaunch rerun(ILaunchConfiguration config, String test) throws CoreException {
        ILaunchConfigurationWorkingCopy wc = config.copy(config.getName() + " [" + configName(test) + "]");
        wc.setAttribute(TestsAttributes.FILTER, test + " --exact");
        wc.setAttribute(TestsAttributes.RERUN, true);
        return wc.launch(ILaunchManager.RUN_MODE, null);
    }

    /**
     * The "vmdbg" program configuration that debugs one test: the binary
     * with `NAME --exact --nocapture` (a fresh VM; the --setup commands are not run).
     */
    public static ILaunchConfigurationWorkingCopy debugConfig(ILaunchConfiguration config, String test) throws CoreException {
        ILaunchManager lm = DebugPlugin.getDefault().getLaunchManager();
        ILaunchConfigurationWorkingCopy wc = lm.getLaunchConfigurationType(LaunchAttributes.TYPE_ID)
            .newInstance(null, "debug " + configName(test));
        wc.setAttribute(LaunchAttributes.MODE, LaunchAttributes.MODE_PROGRAM);
        wc.setAttribute(LaunchAttributes.PROGRAM, config.getAttribute(TestsAttributes.BINARY, ""));
        wc.setAttribute(LaunchAttributes.ARGS, List.of(test, "--exact", "--nocapture"));
        String engine = config.getAttribute(TestsAttributes.ENGINE, "");
        if (!engine.isBlank() && !"auto".equals(engine)) wc.setAttribute(LaunchAttributes.ENGINE, engine);
        String vmdbg = config.getAttribute(LaunchAttributes.VMDBG_PATH, "");
        if (!vmdbg.isBlank()) wc.setAttribute(LaunchAttributes.VMDBG_PATH, vmdbg);
        return wc;
    }

    /** Eclipse refuses some characters (':' among them) in configuration names. */
    private static String configName(String test) {
        return test.replaceAll("[^A-Za-z0-9_.\\- ]", "_");
    }
}
