package vmdbg.eclipse.tests;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.util.List;

/**
 * Where the test inputs are (system properties the test script sets) and
 * whether this machine has the tier a scenario needs: a missing tier fails
 * under CI and is a loud skip elsewhere.
 */
final class Env {
    private Env() {
    }

    static String prop(String name) {
        String v = System.getProperty(name);
        if (v == null || v.isBlank()) throw new IllegalStateException("system property " + name + " is not set (run eclipse-plugin through .ci/test.d/eclipse.sh)");
        return v;
    }

    static File repo() {
        return new File(prop("vmdbg.test.repo"));
    }

    static File bin(String name) {
        return new File(prop("vmdbg.test.bin"), name);
    }

    static boolean strict() {
        return Boolean.parseBoolean(System.getProperty("vmdbg.test.strict", "false"));
    }

    static File callsC() {
        return new File(repo(), "tests/guests/baremetal/calls.c");
    }

    static File localsC() {
        return new File(repo(), "tests/guests/programs/locals.c");
    }

    static File kernel() {
        return new File(prop("vmdbg.test.kernels"), "calls-O0.elf");
    }

    static File program() {
        return new File(prop("vmdbg.test.programs"), "locals");
    }

    /** Line of the `/* MARK:name *\/` comment in a test source. */
    static int marker(File source, String name) {
        return lineContaining(source, "MARK:" + name + " */");
    }

    /** The first line of a source that contains `text`. */
    static int lineContaining(File source, String text) {
        try {
            List<String> lines = Files.readAllLines(source.toPath());
            for (int i = 0; i < lines.size(); i++) {
                if (lines.get(i).contains(text)) return i + 1;
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + source + ": " + e.getMessage());
        }
        throw new IllegalStateException("no line with '" + text + "' in " + source);
    }

    /** Why the host tier (vmdbg-vmm on this machine's /dev/kvm) cannot run here, or null. */
    static String hostTierMissing() {
        File kvm = new File("/dev/kvm");
        if (!kvm.canRead() || !kvm.canWrite()) return "/dev/kvm cannot be opened";
        for (File f : new File[] {bin("vmdbg"), bin("vmdbg-vmm")}) {
            if (!f.canExecute()) return f + " is not built (cargo build --release)";
        }
        if (!kernel().isFile()) return "test kernel " + kernel() + " is not built (make -C tests/guests/baremetal)";
        return null;
    }

    /** Why program sessions (a Linux guest under QEMU or KVM) cannot run here, or null. */
    static String programTierMissing() {
        if (!bin("vmdbg").canExecute()) return bin("vmdbg") + " is not built (cargo build --release)";
        if (!program().isFile()) return "test program " + program() + " is not built (gcc)";
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (new File(dir, "qemu-system-x86_64").canExecute()) return null;
        }
        return "qemu-system-x86_64 is not installed (bash .ci/setup)";
    }

    static String engine() {
        String e = System.getenv("VMDBG_TEST_ENGINE");
        return e == null || e.isBlank() ? "qemu" : e;
    }
}
