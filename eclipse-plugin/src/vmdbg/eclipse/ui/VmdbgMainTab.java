package vmdbg.eclipse.ui;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.swt.SWT;
import org.eclipse.swt.layout.GridData;
import org.eclipse.swt.layout.GridLayout;
import org.eclipse.swt.widgets.Button;
import org.eclipse.swt.widgets.Combo;
import org.eclipse.swt.widgets.Composite;
import org.eclipse.swt.widgets.Group;
import org.eclipse.swt.widgets.Label;
import org.eclipse.swt.widgets.Text;

import vmdbg.eclipse.launch.LaunchAttributes;

/**
 * One tab for the three kinds of session: a program in a fresh Linux VM
 * (program, args, env, cwd, engine), a guest kernel on vmdbg-vmm (kernel,
 * symbols, command line), or an attached gdb server (address, symbols).
 */
public class VmdbgMainTab extends FormTab {
    private Button program, kernel, attach, stopOnEntry;
    private Text programPath, args, env, cwd, kernelPath, symbols, cmdline, gdbServer, vmdbgPath, vmmPath;
    private Combo engine;

    @Override
    public void createControl(Composite parent) {
        Composite top = new Composite(parent, SWT.NONE);
        top.setLayout(new GridLayout(1, false));
        setControl(top);
        Composite kinds = new Composite(top, SWT.NONE);
        kinds.setLayout(new GridLayout(3, false));
        program = radio(kinds, "Program in a Linux VM");
        kernel = radio(kinds, "Guest kernel");
        attach = radio(kinds, "Attach to a gdb server");

        Group p = group(top, "Program");
        programPath = field(p, "Program (ELF built with -g):");
        args = field(p, "Arguments (one per line):", SWT.MULTI | SWT.BORDER | SWT.V_SCROLL);
        env = field(p, "Environment (NAME=value per line):", SWT.MULTI | SWT.BORDER | SWT.V_SCROLL);
        cwd = field(p, "Working directory in the guest:");
        engine = engineCombo(p);

        Group k = group(top, "Kernel / attach");
        kernelPath = field(k, "Kernel (64-bit ELF):");
        symbols = field(k, "Symbols (ELF with DWARF):");
        cmdline = field(k, "Kernel command line:");
        gdbServer = field(k, "gdb server (host:port or unix:/path):");

        Group o = group(top, "Options");
        stopOnEntry = new Button(o, SWT.CHECK);
        stopOnEntry.setText("Stop on entry");
        stopOnEntry.addListener(SWT.Selection, e -> changed());
        new Label(o, SWT.NONE);
        vmdbgPath = field(o, "vmdbg binary (empty: preference, then PATH):");
        vmmPath = field(o, "vmdbg-vmm binary (kernel sessions; empty: beside vmdbg):");
    }

    private Button radio(Composite parent, String text) {
        Button b = new Button(parent, SWT.RADIO);
        b.setText(text);
        b.addListener(SWT.Selection, e -> changed());
        return b;
    }

    private Group group(Composite parent, String text) {
        Group g = new Group(parent, SWT.NONE);
        g.setText(text);
        g.setLayout(new GridLayout(2, false));
        g.setLayoutData(new GridData(SWT.FILL, SWT.TOP, true, false));
        return g;
    }

    @Override
    public void setDefaults(ILaunchConfigurationWorkingCopy c) {
        c.setAttribute(LaunchAttributes.MODE, LaunchAttributes.MODE_PROGRAM);
        c.setAttribute(LaunchAttributes.ENGINE, "auto");
    }

    @Override
    public void initializeFrom(ILaunchConfiguration c) {
        try {
            String mode = c.getAttribute(LaunchAttributes.MODE, LaunchAttributes.MODE_PROGRAM);
            program.setSelection(mode.equals(LaunchAttributes.MODE_PROGRAM));
            kernel.setSelection(mode.equals(LaunchAttributes.MODE_KERNEL));
            attach.setSelection(mode.equals(LaunchAttributes.MODE_ATTACH));
            programPath.setText(c.getAttribute(LaunchAttributes.PROGRAM, ""));
            args.setText(String.join("\n", c.getAttribute(LaunchAttributes.ARGS, List.of())));
            StringBuilder e = new StringBuilder();
            c.getAttribute(LaunchAttributes.ENV, Map.<String, String>of()).forEach((n, v) -> e.append(n).append('=').append(v).append('\n'));
            env.setText(e.toString());
            cwd.setText(c.getAttribute(LaunchAttributes.CWD, ""));
            engine.setText(c.getAttribute(LaunchAttributes.ENGINE, "auto"));
            kernelPath.setText(c.getAttribute(LaunchAttributes.KERNEL, ""));
            symbols.setText(c.getAttribute(LaunchAttributes.SYMBOLS, ""));
            cmdline.setText(c.getAttribute(LaunchAttributes.CMDLINE, ""));
            gdbServer.setText(c.getAttribute(LaunchAttributes.GDB_SERVER, ""));
            stopOnEntry.setSelection(c.getAttribute(LaunchAttributes.STOP_ON_ENTRY, false));
            vmdbgPath.setText(c.getAttribute(LaunchAttributes.VMDBG_PATH, ""));
            vmmPath.setText(c.getAttribute(LaunchAttributes.VMM_PATH, ""));
        } catch (CoreException e) {
            setErrorMessage(e.getMessage());
        }
    }

    @Override
    public void performApply(ILaunchConfigurationWorkingCopy c) {
        c.setAttribute(LaunchAttributes.MODE, kernel.getSelection() ? LaunchAttributes.MODE_KERNEL
            : attach.getSelection() ? LaunchAttributes.MODE_ATTACH : LaunchAttributes.MODE_PROGRAM);
        c.setAttribute(LaunchAttributes.PROGRAM, programPath.getText().trim());
        c.setAttribute(LaunchAttributes.ARGS, lines(args));
        Map<String, String> vars = new LinkedHashMap<>();
        for (String line : env.getText().split("\\R")) {
            int eq = line.indexOf('=');
            if (eq > 0) vars.put(line.substring(0, eq).trim(), line.substring(eq + 1));
        }
        c.setAttribute(LaunchAttributes.ENV, vars);
        c.setAttribute(LaunchAttributes.CWD, cwd.getText().trim());
        c.setAttribute(LaunchAttributes.ENGINE, engine.getText());
        c.setAttribute(LaunchAttributes.KERNEL, kernelPath.getText().trim());
        c.setAttribute(LaunchAttributes.SYMBOLS, symbols.getText().trim());
        c.setAttribute(LaunchAttributes.CMDLINE, cmdline.getText().trim());
        c.setAttribute(LaunchAttributes.GDB_SERVER, gdbServer.getText().trim());
        c.setAttribute(LaunchAttributes.STOP_ON_ENTRY, stopOnEntry.getSelection());
        c.setAttribute(LaunchAttributes.VMDBG_PATH, vmdbgPath.getText().trim());
        c.setAttribute(LaunchAttributes.VMM_PATH, vmmPath.getText().trim());
    }

    @Override
    public boolean isValid(ILaunchConfiguration c) {
        setErrorMessage(null);
        for (String line : env.getText().split("\\R")) {
            if (!line.isBlank() && line.indexOf('=') <= 0) {
                setErrorMessage("Environment line without NAME=: " + line);
                return false;
            }
        }
        if (program.getSelection() && programPath.getText().isBlank()) return error("Give the program to debug");
        if (kernel.getSelection() && kernelPath.getText().isBlank()) return error("Give the kernel to boot");
        if (attach.getSelection() && (gdbServer.getText().isBlank() || symbols.getText().isBlank())) {
            return error("Attach needs the gdb server's address and the symbols");
        }
        return true;
    }

    private boolean error(String message) {
        setErrorMessage(message);
        return false;
    }

    @Override
    public String getName() {
        return "Main";
    }
}
