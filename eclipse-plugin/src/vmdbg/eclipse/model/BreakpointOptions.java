package vmdbg.eclipse.model;

import org.eclipse.core.resources.IMarker;
import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.model.IBreakpoint;

import com.google.gson.JsonObject;

/**
 * What a vmdbg breakpoint carries beyond its place, by the names of DAP's
 * SourceBreakpoint and FunctionBreakpoint: a condition (`n == 3`), a hit
 * condition (`3`, `>= 3`, `% 2`) and, for line breakpoints, a log message
 * (`n={n}`: a logpoint, which prints instead of stopping). They are marker
 * attributes, set in the breakpoint's Properties page or on the marker;
 * vmdbg evaluates them.
 */
public final class BreakpointOptions {
    public static final String CONDITION = "vmdbg.condition";
    public static final String HIT_CONDITION = "vmdbg.hitCondition";
    public static final String LOG_MESSAGE = "vmdbg.logMessage";

    private BreakpointOptions() {
    }

    /** The option's value on the breakpoint's marker ("" when unset). */
    public static String get(IBreakpoint b, String attribute) {
        IMarker m = b.getMarker();
        return m == null ? "" : m.getAttribute(attribute, "");
    }

    /** Sets (or, when blank, clears) an option; the change reaches a running session as a breakpoint change. */
    public static void set(IBreakpoint b, String attribute, String value) throws CoreException {
        String v = value == null ? "" : value.strip();
        b.getMarker().setAttribute(attribute, v.isEmpty() ? null : v);
    }

    /** Adds the breakpoint's options to its DAP breakpoint object. */
    static void addTo(JsonObject dap, IBreakpoint b, boolean logMessage) {
        put(dap, "condition", get(b, CONDITION));
        put(dap, "hitCondition", get(b, HIT_CONDITION));
        if (logMessage) put(dap, "logMessage", get(b, LOG_MESSAGE));
    }

    private static void put(JsonObject dap, String field, String value) {
        if (!value.isEmpty()) dap.addProperty(field, value);
    }

    /** How the options read after a breakpoint's label, e.g. " [if n == 3] [hit >= 2] [log: n={n}]". */
    public static String describe(IBreakpoint b) {
        StringBuilder s = new StringBuilder();
        if (!get(b, CONDITION).isEmpty()) s.append(" [if ").append(get(b, CONDITION)).append(']');
        if (!get(b, HIT_CONDITION).isEmpty()) s.append(" [hit ").append(get(b, HIT_CONDITION)).append(']');
        if (!get(b, LOG_MESSAGE).isEmpty()) s.append(" [log: ").append(get(b, LOG_MESSAGE)).append(']');
        return s.toString();
    }
}
