package vmdbg.eclipse.ui;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.ILaunchConfiguration;
import org.eclipse.debug.core.ILaunchConfigurationWorkingCopy;
import org.eclipse.debug.ui.AbstractLaunchConfigurationTab;
import org.eclipse.swt.SWT;
import org.eclipse.swt.layout.GridData;
import org.eclipse.swt.layout.GridLayout;
import org.eclipse.swt.widgets.Combo;
import org.eclipse.swt.widgets.Composite;
import org.eclipse.swt.widgets.Label;
import org.eclipse.swt.widgets.Text;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.testrun.TestsAttributes;

/** The "vmdbg Tests" configuration: test binary, set-up commands, engine, filter, vmdbg path. */
public class VmdbgTestsTab extends AbstractLaunchConfigurationTab {
    private Text binary, setup, filter, vmdbgPath;
    private Combo engine;

    @Override
    public void createControl(Composite parent) {
        Composite top = new Composite(parent, SWT.NONE);
        top.setLayout(new GridLayout(2, false));
        setControl(top);
        binary = field(top, "Test binary (libtest or GoogleTest):", SWT.SINGLE | SWT.BORDER);
        setup = field(top, "Set-up commands (one per line, run once before the snapshot):", SWT.MULTI | SWT.BORDER | SWT.V_SCROLL);
        ((GridData) setup.getLayoutData()).heightHint = 60;
        new Label(top, SWT.NONE).setText("Engine:");
        engine = new Combo(top, SWT.READ_ONLY);
        engine.setItems("auto", "kvm", "qemu");
        engine.addModifyListener(e -> changed());
        filter = field(top, "Filter (e.g. marker --skip marker_two):", SWT.SINGLE | SWT.BORDER);
        vmdbgPath = field(top, "vmdbg path (empty: preference, else PATH):", SWT.SINGLE | SWT.BORDER);
    }

    private Text field(Composite parent, String label, int style) {
        new Label(parent, SWT.NONE).setText(label);
        Text t = new Text(parent, style);
        t.setLayoutData(new GridData(SWT.FILL, SWT.FILL, true, false));
        t.addModifyListener(e -> changed());
        return t;
    }

    private void changed() {
        setDirty(true);
        updateLaunchConfigurationDialog();
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
        List<String> lines = new ArrayList<>(Arrays.asList(setup.getText().split("\\R")));
        lines.removeIf(String::isBlank);
        c.setAttribute(TestsAttributes.SETUP, lines);
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
