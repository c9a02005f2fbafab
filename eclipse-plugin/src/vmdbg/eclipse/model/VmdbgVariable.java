package vmdbg.eclipse.model;

import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.model.IValue;
import org.eclipse.debug.core.model.IVariable;

import com.google.gson.JsonObject;

/** A variable, scope or member of a DAP `variables` reply. Values are read-only here. */
public class VmdbgVariable extends VmdbgDebugElement implements IVariable {
    private final String name;
    private final VmdbgValue value;

    VmdbgVariable(VmdbgDebugTarget target, String name, VmdbgValue value) {
        super(target);
        this.name = name;
        this.value = value;
    }

    static VmdbgVariable of(VmdbgDebugTarget target, JsonObject v) {
        return new VmdbgVariable(target, v.get("name").getAsString(), valueOf(target, v));
    }

    static VmdbgValue valueOf(VmdbgDebugTarget target, JsonObject v) {
        String type = v.has("type") && !v.get("type").isJsonNull() ? v.get("type").getAsString() : null;
        int ref = v.has("variablesReference") ? v.get("variablesReference").getAsInt() : 0;
        return new VmdbgValue(target, v.get("value").getAsString(), type, ref);
    }

    @Override
    public IValue getValue() {
        return value;
    }

    @Override
    public String getName() {
        return name;
    }

    @Override
    public String getReferenceTypeName() {
        return value.getReferenceTypeName();
    }

    @Override
    public boolean hasValueChanged() {
        return false;
    }

    @Override
    public void setValue(String expression) throws DebugException {
        throw new DebugException(new org.eclipse.core.runtime.Status(org.eclipse.core.runtime.IStatus.ERROR, PLUGIN_ID,
            "changing values is not supported by the vmdbg Eclipse plugin yet"));
    }

    @Override
    public void setValue(IValue v) throws DebugException {
        setValue(v.getValueString());
    }

    @Override
    public boolean supportsValueModification() {
        return false;
    }

    @Override
    public boolean verifyValue(String expression) {
        return false;
    }

    @Override
    public boolean verifyValue(IValue v) {
        return false;
    }
}
