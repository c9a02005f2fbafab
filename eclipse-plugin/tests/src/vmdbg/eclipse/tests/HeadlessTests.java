package vmdbg.eclipse.tests;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

import org.eclipse.equinox.app.IApplication;
import org.eclipse.equinox.app.IApplicationContext;

/**
 * The headless suite, an Eclipse application (PDE's test runner is not in
 * Debian's Eclipse): each scenario launches the real `vmdbg dap` through
 * ILaunchManager and checks the Eclipse debug model. The exit status is
 * the number of failed scenarios; a scenario whose tier is missing fails
 * under CI (vmdbg.test.strict) and is a loud skip elsewhere.
 */
public class HeadlessTests implements IApplication {
    /** The scenario groups vmdbg.test.scenarios can name. */
    static final List<String> SCENARIOS = List.of("kernel", "program", "tests");

    @Override
    public Object start(IApplicationContext context) {
        context.applicationRunning();
        Map<String, Callable<String>> scenarios = new LinkedHashMap<>();
        Map<String, String> missing = new LinkedHashMap<>();
        List<String> only = List.of(System.getProperty("vmdbg.test.scenarios", String.join(",", SCENARIOS)).split(",", -1));
        // A misspelt name would run nothing and pass.
        for (String name : only) {
            if (!SCENARIOS.contains(name)) {
                System.out.println("FAIL unknown scenario '" + name + "' in vmdbg.test.scenarios (valid: " + String.join(",", SCENARIOS) + ")");
                System.out.println("headless: 0 passed, 1 failed, 0 skipped");
                return 1;
            }
        }
        if (only.contains("kernel")) {
            add(scenarios, missing, "kernel session on vmdbg-vmm (host tier)", Scenarios::kernel, Env.hostTierMissing());
            add(scenarios, missing, "suspend a running kernel (host tier)", Scenarios::suspend, Env.hostTierMissing());
            add(scenarios, missing, "terminate while stopped ends the VM (host tier)", Scenarios::terminate, Env.hostTierMissing());
            add(scenarios, missing, "attach to vmdbg-vmm's gdb server, disconnect (host tier)", Scenarios::attach, Env.hostTierMissing());
            add(scenarios, missing, "bad configurations are refused with a clear message", Scenarios::badInput, Env.hostTierMissing());
        }
        if (only.contains("program")) {
            add(scenarios, missing, "program session in a Linux VM (" + Env.engine() + " engine)", Scenarios::program, Env.programTierMissing());
        }
        if (only.contains("tests")) {
            add(scenarios, missing, "vmdbg Tests launch and view model on the isolation crate (" + Env.engine() + " engine)",
                TestsViewScenario::run, TestsViewScenario.missing());
        }
        int passed = 0, failed = 0, skipped = 0;
        for (var e : scenarios.entrySet()) {
            String reason = missing.get(e.getKey());
            if (reason != null) {
                if (Env.strict()) {
                    System.out.println("FAIL " + e.getKey() + ": required but unavailable under CI: " + reason);
                    failed++;
                } else {
                    System.out.println("SKIPPED: " + e.getKey() + ": " + reason);
                    skipped++;
                }
                continue;
            }
            long start = System.nanoTime();
            try {
                String note = e.getValue().call();
                System.out.printf("PASS %s (%d ms; %s)%n", e.getKey(), (System.nanoTime() - start) / 1_000_000, note);
                passed++;
            } catch (Throwable t) {
                System.out.println("FAIL " + e.getKey() + ": " + t);
                t.printStackTrace(System.out);
                failed++;
            }
        }
        System.out.println("headless: " + passed + " passed, " + failed + " failed, " + skipped + " skipped");
        return failed;
    }

    private static void add(Map<String, Callable<String>> scenarios, Map<String, String> missing, String name,
            Callable<String> scenario, String missingTier) {
        scenarios.put(name, scenario);
        missing.put(name, missingTier);
    }

    @Override
    public void stop() {
    }
}
