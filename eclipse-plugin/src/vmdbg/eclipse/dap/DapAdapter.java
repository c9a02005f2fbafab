package vmdbg.eclipse.dap;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import com.google.gson.JsonObject;

/**
 * A `vmdbg dap` process on stdio and the DAP connection to it. Where
 * vmdbg is comes from the caller (launch attribute or preference), else
 * PATH; a missing binary is an error that says which places were tried.
 */
public class DapAdapter {
    private final Process process;
    private final DapConnection connection;

    private DapAdapter(Process process, DapConnection connection) {
        this.process = process;
        this.connection = connection;
    }

    /**
     * @param vmdbg the configured path of vmdbg, or null/empty for PATH
     * @param env variables added to the adapter's environment (e.g. VMDBG_VMM)
     * @param events gets each DAP event
     * @param stderr gets each line the adapter writes to stderr (its log)
     * @param closed gets called once the adapter's stdout ends
     */
    public static DapAdapter start(String vmdbg, Map<String, String> env, Consumer<JsonObject> events,
            Consumer<String> stderr, Consumer<Throwable> closed) throws DapException {
        String exe = resolve(vmdbg);
        ProcessBuilder pb = new ProcessBuilder(exe, "dap");
        pb.environment().putAll(env);
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new DapException("cannot start " + exe + " dap: " + e.getMessage());
        }
        Thread err = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) stderr.accept(line);
            } catch (IOException e) {
                // The adapter is gone; its exit is reported through the DAP stream.
            }
        }, "vmdbg dap stderr");
        err.setDaemon(true);
        err.start();
        return new DapAdapter(p, new DapConnection(p.getInputStream(), p.getOutputStream(), events, closed));
    }

    /** The vmdbg executable: the configured path, else the first `vmdbg` on PATH. */
    public static String resolve(String configured) throws DapException {
        if (configured != null && !configured.isBlank()) {
            File f = new File(configured);
            if (!f.canExecute()) throw new DapException("vmdbg is not an executable file: " + configured
                + " (set in the launch configuration's vmdbg path or the vmdbg.eclipse/vmdbgPath preference)");
            return f.getAbsolutePath();
        }
        List<String> tried = new ArrayList<>();
        String path = System.getenv("PATH");
        if (path != null) {
            for (String dir : path.split(File.pathSeparator)) {
                File f = new File(dir, "vmdbg");
                if (f.canExecute()) return f.getAbsolutePath();
                tried.add(dir);
            }
        }
        throw new DapException("vmdbg was not found on PATH (" + String.join(File.pathSeparator, tried)
            + "); set its path in the launch configuration or the vmdbg.eclipse/vmdbgPath preference");
    }

    public DapConnection connection() {
        return connection;
    }

    public Process process() {
        return process;
    }

    /** Ends the adapter process if the session did not end it already. */
    public void destroy() {
        if (process.isAlive()) process.destroy();
    }
}
