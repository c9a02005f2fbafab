package vmdbg.eclipse.ui;

import java.util.List;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.swt.SWT;
import org.eclipse.swt.layout.GridData;
import org.eclipse.swt.layout.GridLayout;
import org.eclipse.swt.widgets.Combo;
import org.eclipse.swt.widgets.Composite;
import org.eclipse.swt.widgets.Text;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.testrun.TestsAttributes;

/** The "vmdbg Tests" configuration: test binary, set-up commands, engine, filter, vmdbg path. */
public class VmdbgTestsTab extends FormTab {
    private Text binary, setup, filter, vmdbgPath;
    private Combo engine;

    @Override
    public void createControl(Composite parent) {
        Composite top = new Composite(parent, SWT.NONE);
        top.setLayout(new GridLayout(2, false));
        setControl(top);
        binary = field(top, "Test binary (libtest or GoogleTest):");
        setup = field(top, "Set-up commands (one per line, run once before the snapshot):", SWT.MULTI | SWT.BORDER | SWT.V_SCROLL);
        ((GridData) setup.getLayoutData()).heightHint = 60;
        engine = engineCombo(top);
        filter = field(top, "Filter (e.g. marker --skip marker_two):");
        vmdbgPath = field(top, "vmdbg path (empty: preference, else PATH):");
    }

    @Override
    public void setDefaults(ILaunchConfigurationWorkingCopy c) {
        c.setAttribute(TestsAttributes.ENGINE, "");
    }

    @Override
    public void initializeFrom(ILaunchConfiguration c) {
        try {
            binary.setText(c.getAttribute(TestsAttributes.BINARY, ""));
            setup.setText(String.join("\n", c.getAttribute(TestsAttributes.SETUP, List.of())));
            String e = c.getAttribute(TestsAttributes.ENGINE, "");
            engine.setText(e.isBlank() ? "auto" : e);
            filter.setText(c.getAttribute(TestsAttributes.FILTER, ""));
            vmdbgPath.setText(c.getAttribute(LaunchAttributes.VMDBG_PATH, ""));
        } catch (CoreException e) {
            setErrorMessage(e.getMessage());
        }
    }

    @Override
    public void performApply(ILaunchConfigurationWorkingCopy c) {
        c.setAttribute(TestsAttributes.BINARY, binary.getText().trim());
        c.setAttribute(TestsAttributes.SETUP, lines(setup));
        c.setAttribute(TestsAttributes.ENGINE, "auto".equals(engine.getText()) ? "" : engine.getText());
        c.setAttribute(TestsAttributes.FILTER, filter.getText().trim());
        c.setAttribute(LaunchAttributes.VMDBG_PATH, vmdbgPath.getText().trim());
    }

    @Override
    public boolean isValid(ILaunchConfiguration c) {
        setErrorMessage(binary.getText().isBlank() ? "Choose the test binary" : null);
        return !binary.getText().isBlank();
    }

    @Override
    public String getName() {
        return "Tests";
    }
}
