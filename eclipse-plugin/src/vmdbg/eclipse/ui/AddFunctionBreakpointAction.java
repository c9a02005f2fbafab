package vmdbg.eclipse.ui;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.jface.action.IAction;
import org.eclipse.jface.dialogs.ErrorDialog;
import org.eclipse.jface.dialogs.InputDialog;
import org.eclipse.jface.viewers.ISelection;
import org.eclipse.jface.window.Window;
import org.eclipse.ui.IViewActionDelegate;
import org.eclipse.ui.IViewPart;

import vmdbg.eclipse.model.VmdbgFunctionBreakpoint;

/** Breakpoints view menu: "Add vmdbg Function Breakpoint…" asks for a function name (as DWARF names it: `factorial`, `isolation::tests::marker_one`). */
public class AddFunctionBreakpointAction implements IViewActionDelegate {
    private IViewPart view;

    @Override
    public void init(IViewPart view) {
        this.view = view;
    }

    @Override
    public void run(IAction action) {
        InputDialog ask = new InputDialog(view.getSite().getShell(), "vmdbg Function Breakpoint",
            "Function name (C: factorial; Rust: crate::module::function):", "",
            text -> text.isBlank() ? "Type a function name" : null);
        if (ask.open() != Window.OK) return;
        try {
            new VmdbgFunctionBreakpoint(ask.getValue().strip());
        } catch (CoreException e) {
            ErrorDialog.openError(view.getSite().getShell(), "vmdbg", "The function breakpoint was not made", e.getStatus());
        }
    }

    @Override
    public void selectionChanged(IAction action, ISelection selection) {
    }
}
