package vmdbg.eclipse.testrun;

/** One test of a run as `vmdbg test --format json` reported it. */
public final class TestResult {
    /** "running", "ok", "failed" or "ignored". */
    public volatile String status = "running";
    public final String name;
    public volatile double seconds;
    public volatile String stdout = "", stderr = "", console = "", message = "";

    TestResult(String name) {
        this.name = name;
    }

    /**
     * What a failure says: vmdbg's message (e.g. "exit status 101") and the
     * panic or assertion lines of the test's stderr, where libtest puts them.
     */
    public String failure() {
        if (!"failed".equals(status)) return "";
        StringBuilder b = new StringBuilder(message == null ? "" : message);
        for (String line : stderr.split("\n")) {
            if (line.isBlank() || line.startsWith("note: run with")) continue;
            if (b.length() > 0) b.append('\n');
            b.append(line);
        }
        return b.toString();
    }

    /** The detail pane's text: failure, then stdout, stderr and the VM console. */
    public String details() {
        StringBuilder b = new StringBuilder(name).append(": ").append(status);
        if (!"running".equals(status)) b.append(String.format(" (%.3f s)", seconds));
        b.append('\n');
        if ("failed".equals(status)) b.append("\n--- failure\n").append(failure()).append('\n');
        if (!stdout.isEmpty()) b.append("\n--- stdout\n").append(stdout);
        if (!stderr.isEmpty()) b.append("\n--- stderr\n").append(stderr);
        if (!console.isEmpty()) b.append("\n--- VM console\n").append(console);
        return b.toString();
    }
}
