package vmdbg.eclipse.ui;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.model.IBreakpoint;
import org.eclipse.swt.SWT;
import org.eclipse.swt.layout.GridData;
import org.eclipse.swt.layout.GridLayout;
import org.eclipse.swt.widgets.Composite;
import org.eclipse.swt.widgets.Control;
import org.eclipse.swt.widgets.Label;
import org.eclipse.swt.widgets.Text;
import org.eclipse.ui.dialogs.PropertyPage;

import vmdbg.eclipse.model.BreakpointOptions;
import vmdbg.eclipse.model.VmdbgLineBreakpoint;

/**
 * A vmdbg breakpoint's condition, hit condition and (line breakpoints)
 * log message, as DAP and the VS Code extension name them; vmdbg
 * evaluates them, so the page only stores them on the marker.
 */
public class BreakpointPropertyPage extends PropertyPage {
    private Text condition;
    private Text hitCondition;
    private Text logMessage;

    private IBreakpoint breakpoint() {
        return getElement().getAdapter(IBreakpoint.class);
    }

    @Override
    protected Control createContents(Composite parent) {
        Composite c = new Composite(parent, SWT.NONE);
        c.setLayout(new GridLayout(2, false));
        IBreakpoint b = breakpoint();
        condition = field(c, "Condition (stop when true, e.g. n == 3):", BreakpointOptions.get(b, BreakpointOptions.CONDITION));
        hitCondition = field(c, "Hit condition (3, >= 3, % 2):", BreakpointOptions.get(b, BreakpointOptions.HIT_CONDITION));
        if (b instanceof VmdbgLineBreakpoint) {
            logMessage = field(c, "Log message instead of stopping ({expr} is replaced):",
                BreakpointOptions.get(b, BreakpointOptions.LOG_MESSAGE));
        }
        return c;
    }

    private static Text field(Composite c, String label, String value) {
        new Label(c, SWT.NONE).setText(label);
        Text t = new Text(c, SWT.BORDER | SWT.SINGLE);
        t.setLayoutData(new GridData(SWT.FILL, SWT.CENTER, true, false));
        t.setText(value);
        return t;
    }

    @Override
    public boolean performOk() {
        IBreakpoint b = breakpoint();
        try {
            BreakpointOptions.set(b, BreakpointOptions.CONDITION, condition.getText());
            BreakpointOptions.set(b, BreakpointOptions.HIT_CONDITION, hitCondition.getText());
            if (logMessage != null) BreakpointOptions.set(b, BreakpointOptions.LOG_MESSAGE, logMessage.getText());
        } catch (CoreException e) {
            setErrorMessage("The breakpoint's marker is gone: " + e.getMessage());
            return false;
        }
        return true;
    }
}
