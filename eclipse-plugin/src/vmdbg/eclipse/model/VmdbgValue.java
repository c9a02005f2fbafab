package vmdbg.eclipse.model;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.model.IValue;
import org.eclipse.debug.core.model.IVariable;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;

import vmdbg.eclipse.dap.DapException;

/** A value as `vmdbg dap` formats it; its members are fetched with a `variables` request when first expanded. */
public class VmdbgValue extends VmdbgDebugElement implements IValue {
    private final String text;
    private final String type;
    private final int reference;
    private IVariable[] children;

    VmdbgValue(VmdbgDebugTarget target, String text, String type, int reference) {
        super(target);
        this.text = text;
        this.type = type;
        this.reference = reference;
    }

    @Override
    public String getReferenceTypeName() {
        return type == null ? "" : type;
    }

    @Override
    public String getValueString() {
        return text;
    }

    @Override
    public boolean isAllocated() {
        return true;
    }

    @Override
    public synchronized IVariable[] getVariables() throws DebugException {
        if (reference == 0) return new IVariable[0];
        if (children == null) {
            List<IVariable> list = new ArrayList<>();
            for (JsonObject v : fetch(target(), reference)) list.add(VmdbgVariable.of(target(), v));
            children = list.toArray(new IVariable[0]);
        }
        return children;
    }

    @Override
    public boolean hasVariables() {
        return reference != 0;
    }

    /** The `variables` of a reference, as JSON objects. */
    static List<JsonObject> fetch(VmdbgDebugTarget target, int reference) throws DebugException {
        try {
            JsonObject body = target.dap().call("variables", Map.of("variablesReference", reference), VmdbgDebugTarget.REQUEST_MS);
            List<JsonObject> list = new ArrayList<>();
            for (JsonElement e : body.getAsJsonArray("variables")) list.add(e.getAsJsonObject());
            return list;
        } catch (DapException e) {
            throw error(e);
        }
    }
}
