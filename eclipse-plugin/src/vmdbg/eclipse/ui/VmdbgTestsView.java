package vmdbg.eclipse.ui;

import java.util.function.Consumer;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.debug.core.ILaunchManager;
import org.eclipse.debug.ui.DebugUITools;
import org.eclipse.jface.action.Action;
import org.eclipse.jface.action.IToolBarManager;
import org.eclipse.jface.viewers.ArrayContentProvider;
import org.eclipse.jface.viewers.ColumnLabelProvider;
import org.eclipse.jface.viewers.IStructuredSelection;
import org.eclipse.jface.viewers.TableViewer;
import org.eclipse.jface.viewers.TableViewerColumn;
import org.eclipse.swt.SWT;
import org.eclipse.swt.custom.SashForm;
import org.eclipse.swt.graphics.Color;
import org.eclipse.swt.layout.GridData;
import org.eclipse.swt.layout.GridLayout;
import org.eclipse.swt.widgets.Composite;
import org.eclipse.swt.widgets.Display;
import org.eclipse.swt.widgets.Label;
import org.eclipse.swt.widgets.Text;
import org.eclipse.ui.IWorkbenchPage;
import org.eclipse.ui.IWorkbenchWindow;
import org.eclipse.ui.PartInitException;
import org.eclipse.ui.PlatformUI;
import org.eclipse.ui.part.ViewPart;

import vmdbg.eclipse.testrun.TestResult;
import vmdbg.eclipse.testrun.TestRun;
import vmdbg.eclipse.testrun.VmdbgTestsLaunchDelegate;

/**
 * The "vmdbg Tests" view: the tests of the latest "vmdbg Tests" run with
 * their result and duration, the selected test's failure, stdout, stderr
 * and VM console, a summary line; re-run or debug the selected test.
 */
public class VmdbgTestsView extends ViewPart {
    public static final String ID = "vmdbg.eclipse.testsView";
    private Label summary;
    private TableViewer table;
    private Text details;
    private final Consumer<TestRun> listener = run -> {
        Display d = PlatformUI.getWorkbench().getDisplay();
        if (!d.isDisposed()) d.asyncExec(this::refresh);
    };

    /** Opens the view (from any thread) when a workbench is running; headless runs have none. */
    public static void showLater() {
        if (!PlatformUI.isWorkbenchRunning()) return;
        Display d = PlatformUI.getWorkbench().getDisplay();
        d.asyncExec(() -> {
            IWorkbenchWindow w = PlatformUI.getWorkbench().getActiveWorkbenchWindow();
            if (w == null && PlatformUI.getWorkbench().getWorkbenchWindowCount() > 0) w = PlatformUI.getWorkbench().getWorkbenchWindows()[0];
            if (w == null || w.getActivePage() == null) return;
            try {
                w.getActivePage().showView(ID, null, IWorkbenchPage.VIEW_VISIBLE);
            } catch (PartInitException e) {
                // the view is optional; the run goes on
            }
        });
    }

    @Override
    public void createPartControl(Composite parent) {
        parent.setLayout(new GridLayout(1, false));
        summary = new Label(parent, SWT.NONE);
        summary.setLayoutData(new GridData(SWT.FILL, SWT.CENTER, true, false));
        SashForm sash = new SashForm(parent, SWT.HORIZONTAL);
        sash.setLayoutData(new GridData(SWT.FILL, SWT.FILL, true, true));
        table = new TableViewer(sash, SWT.BORDER | SWT.FULL_SELECTION | SWT.SINGLE);
        table.getTable().setHeaderVisible(true);
        table.setContentProvider(ArrayContentProvider.getInstance());
        column("Test", 260, t -> t.name);
        column("Result", 70, t -> t.status);
        column("Time", 70, t -> "running".equals(t.status) ? "" : String.format("%.3f s", t.seconds));
        details = new Text(sash, SWT.MULTI | SWT.READ_ONLY | SWT.BORDER | SWT.V_SCROLL | SWT.H_SCROLL);
        sash.setWeights(45, 55);
        table.addSelectionChangedListener(e -> showDetails());
        IToolBarManager bar = getViewSite().getActionBars().getToolBarManager();
        bar.add(onSelected("Re-run test", VmdbgTestsLaunchDelegate::rerun));
        // In a job, as Eclipse's own Debug actions launch: the session's launch waits for the VM to boot.
        bar.add(onSelected("Debug test", (config, test) ->
            DebugUITools.launch(VmdbgTestsLaunchDelegate.debugConfig(config, test), ILaunchManager.DEBUG_MODE)));
        TestRun.addListener(listener);
        refresh();
    }

    private interface TestLaunch {
        void launch(org.eclipse.debug.core.ILaunchConfiguration config, String test) throws CoreException;
    }

    /** A toolbar action that launches something for the selected test of the latest run. */
    private Action onSelected(String label, TestLaunch launch) {
        return new Action(label) {
            @Override
            public void run() {
                TestResult t = selected();
                TestRun run = TestRun.latest();
                if (t == null || run == null) return;
                try {
                    launch.launch(run.config, t.name);
                } catch (CoreException e) {
                    details.setText(e.getMessage());
                }
            }
        };
    }

    private void column(String title, int width, java.util.function.Function<TestResult, String> text) {
        TableViewerColumn c = new TableViewerColumn(table, SWT.NONE);
        c.getColumn().setText(title);
        c.getColumn().setWidth(width);
        c.setLabelProvider(new ColumnLabelProvider() {
            @Override
            public String getText(Object element) {
                return text.apply((TestResult) element);
            }

            @Override
            public Color getForeground(Object element) {
                String s = ((TestResult) element).status;
                int color = "failed".equals(s) ? SWT.COLOR_RED : "ok".equals(s) ? SWT.COLOR_DARK_GREEN
                    : "ignored".equals(s) ? SWT.COLOR_DARK_YELLOW : SWT.COLOR_DARK_GRAY;
                return Display.getCurrent().getSystemColor(color);
            }
        });
    }

    private TestResult selected() {
        Object o = ((IStructuredSelection) table.getSelection()).getFirstElement();
        return o instanceof TestResult t ? t : null;
    }

    /** The toolbar action labelled `label` (the workbench test runs "Debug test" as a click would). */
    public org.eclipse.jface.action.IAction action(String label) {
        for (var item : getViewSite().getActionBars().getToolBarManager().getItems()) {
            if (item instanceof org.eclipse.jface.action.ActionContributionItem a && label.equals(a.getAction().getText())) return a.getAction();
        }
        return null;
    }

    /** Selects a test by name (the workbench test uses it before the screenshot). */
    public void select(String name) {
        TestRun run = TestRun.latest();
        TestResult t = run == null ? null : run.test(name);
        if (t != null) table.setSelection(new org.eclipse.jface.viewers.StructuredSelection(t), true);
    }

    private void showDetails() {
        TestResult t = selected();
        details.setText(t == null ? "" : t.details());
    }

    private void refresh() {
        if (table == null || table.getTable().isDisposed()) return;
        TestRun run = TestRun.latest();
        summary.setText(run == null ? "No vmdbg Tests run yet (Run > Run Configurations > vmdbg Tests)" : run.summary());
        table.setInput(run == null ? new Object[0] : run.tests().toArray());
        showDetails();
        summary.getParent().layout();
    }

    @Override
    public void setFocus() {
        table.getControl().setFocus();
    }

    @Override
    public void dispose() {
        TestRun.removeListener(listener);
        super.dispose();
    }
}
