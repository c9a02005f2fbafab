package vmdbg.eclipse.model;

import java.util.ArrayList;
import java.util.List;

import org.eclipse.debug.core.DebugException;
import org.eclipse.debug.core.model.IRegister;
import org.eclipse.debug.core.model.IRegisterGroup;

import com.google.gson.JsonObject;

/** The frame's Registers scope, shown in Eclipse's Registers view. */
public class VmdbgRegisterGroup extends VmdbgDebugElement implements IRegisterGroup {
    private final String name;
    private final int reference;
    private IRegister[] registers;

    VmdbgRegisterGroup(VmdbgDebugTarget target, String name, int reference) {
        super(target);
        this.name = name;
        this.reference = reference;
    }

    @Override
    public String getName() {
        return name;
    }

    @Override
    public synchronized IRegister[] getRegisters() throws DebugException {
        if (registers == null) {
            List<IRegister> list = new ArrayList<>();
            for (JsonObject v : VmdbgValue.fetch(target(), reference)) {
                list.add(new Register(v.get("name").getAsString(), VmdbgVariable.valueOf(target(), v)));
            }
            registers = list.toArray(new IRegister[0]);
        }
        return registers;
    }

    @Override
    public boolean hasRegisters() {
        return true;
    }

    private class Register extends VmdbgVariable implements IRegister {
        Register(String name, VmdbgValue value) {
            super(VmdbgRegisterGroup.this.target(), name, value);
        }

        @Override
        public IRegisterGroup getRegisterGroup() {
            return VmdbgRegisterGroup.this;
        }
    }
}
