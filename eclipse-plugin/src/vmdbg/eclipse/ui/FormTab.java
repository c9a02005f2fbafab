package vmdbg.eclipse.ui;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.eclipse.debug.ui.AbstractLaunchConfigurationTab;
import org.eclipse.swt.SWT;
import org.eclipse.swt.layout.GridData;
import org.eclipse.swt.widgets.Combo;
import org.eclipse.swt.widgets.Composite;
import org.eclipse.swt.widgets.Label;
import org.eclipse.swt.widgets.Text;

/** The form rows the vmdbg launch tabs share: a labelled text field, the engine choice, one-entry-per-line lists. */
abstract class FormTab extends AbstractLaunchConfigurationTab {
    protected Text field(Composite parent, String label) {
        return field(parent, label, SWT.SINGLE | SWT.BORDER);
    }

    protected Text field(Composite parent, String label, int style) {
        new Label(parent, SWT.NONE).setText(label);
        Text t = new Text(parent, style);
        GridData d = new GridData(SWT.FILL, SWT.CENTER, true, false);
        if ((style & SWT.MULTI) != 0) d.heightHint = 40;
        t.setLayoutData(d);
        t.addModifyListener(e -> changed());
        return t;
    }

    /** "Engine:" with auto, kvm and qemu (as `vmdbg --engine`). */
    protected Combo engineCombo(Composite parent) {
        new Label(parent, SWT.NONE).setText("Engine:");
        Combo engine = new Combo(parent, SWT.READ_ONLY);
        engine.setItems("auto", "kvm", "qemu");
        engine.addModifyListener(e -> changed());
        return engine;
    }

    /** The non-blank lines of a multi-line field, one list entry each. */
    protected static List<String> lines(Text text) {
        List<String> list = new ArrayList<>(Arrays.asList(text.getText().split("\\R")));
        list.removeIf(String::isBlank);
        return list;
    }

    protected void changed() {
        setDirty(true);
        updateLaunchConfigurationDialog();
    }
}
