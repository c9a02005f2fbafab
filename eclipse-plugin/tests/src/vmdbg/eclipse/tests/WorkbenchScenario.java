package vmdbg.eclipse.tests;

import java.io.File;
import java.nio.file.Files;
import java.util.concurrent.atomic.AtomicReference;

import org.eclipse.core.resources.IFile;
import org.eclipse.core.resources.IFolder;
import org.eclipse.core.resources.IProject;
import org.eclipse.core.resources.IResource;
import org.eclipse.core.resources.ResourcesPlugin;
import org.eclipse.core.runtime.Path;
import org.eclipse.core.runtime.preferences.InstanceScope;
import org.eclipse.debug.core.DebugEvent;
import org.eclipse.debug.ui.DebugUITools;
import org.eclipse.debug.ui.IDebugUIConstants;
import org.eclipse.jface.text.IDocument;
import org.eclipse.jface.text.TextSelection;
import org.eclipse.jface.viewers.StructuredSelection;
import org.eclipse.swt.widgets.Display;
import org.eclipse.ui.IStartup;
import org.eclipse.ui.IWorkbenchPage;
import org.eclipse.ui.IWorkbenchWindow;
import org.eclipse.ui.PlatformUI;
import org.eclipse.ui.ide.IDE;
import org.eclipse.ui.texteditor.ITextEditor;

import vmdbg.eclipse.launch.LaunchAttributes;
import vmdbg.eclipse.model.VmdbgDebugElement;
import vmdbg.eclipse.model.VmdbgDebugTarget;
import vmdbg.eclipse.model.VmdbgLineBreakpoint;
import vmdbg.eclipse.model.VmdbgStackFrame;
import vmdbg.eclipse.model.VmdbgThread;
import vmdbg.eclipse.ui.ToggleBreakpointsFactory;
import vmdbg.eclipse.ui.VmdbgLaunchShortcut;
import vmdbg.eclipse.ui.VmdbgMainTab;
import vmdbg.eclipse.ui.VmdbgModelPresentation;
import vmdbg.eclipse.ui.VmdbgTestsView;

/**
 * The workbench scenario, run from a startup hook when
 * -Dvmdbg.test.workbench=kernel is given: opens calls.c (linked into a
 * project) in the text editor, toggles a breakpoint through the plugin's
 * toggle target as the ruler does, debugs the kernel from the UI, and once
 * stopped in the Debug perspective signals the test script (a "ready"
 * file) to take the screenshot. Then it debugs the test program through
 * Debug As > Program in VM. With -Dvmdbg.test.workbench=tests it shows
 * the "vmdbg Tests" view after a run and debugs its failing test from the
 * view. The verdict goes to vmdbg.test.result.
 */
public class WorkbenchScenario implements IStartup {
    @Override
    public void earlyStartup() {
        if (System.getProperty("vmdbg.test.workbench") == null) return;
        String verdict;
        boolean tests = "tests".equals(System.getProperty("vmdbg.test.workbench"));
        String missing = tests ? TestsViewScenario.missing() : Env.hostTierMissing();
        try {
            if (missing != null) {
                verdict = Env.strict() ? "FAIL workbench: required but unavailable under CI: " + missing : "SKIPPED: workbench: " + missing;
            } else {
                verdict = "PASS workbench: " + (tests ? testsView() : run());
            }
        } catch (Throwable t) {
            t.printStackTrace();
            verdict = "FAIL workbench: " + t;
        }
        try {
            Files.writeString(new File(Env.prop("vmdbg.test.result")).toPath(), verdict + "\n");
        } catch (Exception e) {
            e.printStackTrace();
        }
        Display.getDefault().asyncExec(() -> PlatformUI.getWorkbench().close());
    }

    private String run() throws Exception {
        DebugUITools.getPreferenceStore().setValue("org.eclipse.debug.ui.switch_perspective_on_suspend", "always");
        File dir = Env.callsC().getParentFile();
        IProject project = ResourcesPlugin.getWorkspace().getRoot().getProject("baremetal");
        if (!project.exists()) project.create(null);
        project.open(null);
        IFolder folder = project.getFolder("src");
        if (!folder.exists()) folder.createLink(new Path(dir.getAbsolutePath()), IResource.NONE, null);
        IFile calls = folder.getFile("calls.c");
        int leaf = Env.marker(Env.callsC(), "leaf");

        AtomicReference<Object> made = new AtomicReference<>();
        ui(() -> {
            IWorkbenchWindow window = PlatformUI.getWorkbench().getActiveWorkbenchWindow();
            // Xvfb has no window manager to maximize the window: fill the screen by hand.
            window.getShell().setBounds(window.getShell().getDisplay().getPrimaryMonitor().getBounds());
            PlatformUI.getWorkbench().showPerspective(IDebugUIConstants.ID_DEBUG_PERSPECTIVE, window);
            IWorkbenchPage page = window.getActivePage();
            ITextEditor editor = (ITextEditor) IDE.openEditor(page, calls, VmdbgModelPresentation.EDITOR_ID);
            IDocument doc = editor.getDocumentProvider().getDocument(editor.getEditorInput());
            TextSelection line = new TextSelection(doc, doc.getLineOffset(leaf - 1), 0);
            var factory = new ToggleBreakpointsFactory();
            Check.equal(ToggleBreakpointsFactory.TARGET_ID, factory.getDefaultToggleTarget(editor, line), "toggle target for calls.c");
            factory.createToggleTarget(ToggleBreakpointsFactory.TARGET_ID).toggleLineBreakpoints(editor, line);
            made.set(VmdbgLineBreakpoint.find(Env.callsC().getAbsolutePath(), leaf));
        });
        VmdbgLineBreakpoint bp = (VmdbgLineBreakpoint) made.get();
        Check.that(bp != null, "toggling in the editor made a vmdbg breakpoint at line " + leaf);
        Check.equal(calls, bp.getMarker().getResource(), "breakpoint marker on the workspace file");

        long firstStopMs;
        try (Session s = new Session()) {
            long start = System.nanoTime();
            var config = Session.kernelConfig();
            ui(() -> DebugUITools.launch(config, "debug"));
            VmdbgThread thread = s.suspended(DebugEvent.BREAKPOINT, VmdbgDebugTarget.LAUNCH_MS);
            firstStopMs = (System.nanoTime() - start) / 1_000_000;
            VmdbgStackFrame frame = Session.top(thread);
            Check.equal(leaf, frame.getLineNumber(), "stopped line");
            Check.equal("3", Session.value(frame, "depth"), "local depth");
            ui(() -> {
                IWorkbenchPage page = PlatformUI.getWorkbench().getActiveWorkbenchWindow().getActivePage();
                page.showView(IDebugUIConstants.ID_VARIABLE_VIEW);
                page.showView(IDebugUIConstants.ID_DEBUG_VIEW);
            });
            // The views fill in from jobs: the screenshot waits until they show the stop.
            awaitShown(thread, "calls.c", "depth", "3");
            screenshot("stopped.png");
            s.launch = thread.getLaunch();
        }
        mainTabRoundTrip();
        return "kernel: launch to first stop " + firstStopMs + " ms; " + programViaShortcut(project);
    }

    /** The Main tab shows a configuration and writes back what it shows, arguments and environment included. */
    private void mainTabRoundTrip() throws Exception {
        var original = Session.config("tab round trip", LaunchAttributes.MODE_PROGRAM);
        original.setAttribute(LaunchAttributes.PROGRAM, Env.program().getPath());
        original.setAttribute(LaunchAttributes.ARGS, java.util.List.of("one", "two words"));
        original.setAttribute(LaunchAttributes.ENV, java.util.Map.of("GREETING", "hello=world"));
        original.setAttribute(LaunchAttributes.ENGINE, "qemu");
        original.setAttribute(LaunchAttributes.STOP_ON_ENTRY, true);
        var copy = Session.config("tab copy", LaunchAttributes.MODE_KERNEL);
        ui(() -> {
            var shell = new org.eclipse.swt.widgets.Shell(Display.getDefault());
            try {
                var tab = new VmdbgMainTab();
                tab.createControl(shell);
                tab.initializeFrom(original);
                Check.that(tab.isValid(original), "the tab accepts a complete program configuration: " + tab.getErrorMessage());
                tab.performApply(copy);
            } finally {
                shell.dispose();
            }
        });
        for (String key : new String[] {LaunchAttributes.MODE, LaunchAttributes.PROGRAM, LaunchAttributes.ENGINE}) {
            Check.equal(original.getAttribute(key, ""), copy.getAttribute(key, ""), key + " through the Main tab");
        }
        Check.equal(original.getAttribute(LaunchAttributes.ARGS, java.util.List.of()), copy.getAttribute(LaunchAttributes.ARGS, java.util.List.of()), "args through the Main tab");
        Check.equal(original.getAttribute(LaunchAttributes.ENV, java.util.Map.of()), copy.getAttribute(LaunchAttributes.ENV, java.util.Map.of()), "env through the Main tab");
        Check.equal(true, copy.getAttribute(LaunchAttributes.STOP_ON_ENTRY, false), "stopOnEntry through the Main tab");
        Check.equal("two words", ((java.util.List<?>) LaunchAttributes.dapArguments(copy).get("args")).get(1), "DAP args keep spaces");
    }

    /** Debug As > Program in VM on the binary in the Project Explorer: the shortcut makes the configuration and launches it. */
    private String programViaShortcut(IProject project) throws Exception {
        if (Env.programTierMissing() != null) {
            if (Env.strict()) throw new AssertionError("required but unavailable under CI: " + Env.programTierMissing());
            return "program via the shortcut SKIPPED: " + Env.programTierMissing();
        }
        IFolder programs = project.getFolder("programs");
        if (!programs.exists()) programs.createLink(new Path(Env.program().getParent()), IResource.NONE, null);
        IFile binary = programs.getFile(Env.program().getName());
        // The shortcut's configuration names no vmdbg: it comes from the preference.
        InstanceScope.INSTANCE.getNode(VmdbgDebugElement.PLUGIN_ID).put(LaunchAttributes.PREF_VMDBG_PATH, Env.bin("vmdbg").getPath());
        int call = Env.marker(Env.localsC(), "call");
        Session.onlyBreakpoint(Env.localsC(), call);
        try (Session s = new Session()) {
            long start = System.nanoTime();
            ui(() -> new VmdbgLaunchShortcut().launch(new StructuredSelection(binary), "debug"));
            VmdbgThread thread = s.suspended(DebugEvent.BREAKPOINT, VmdbgDebugTarget.LAUNCH_MS);
            long firstStopMs = (System.nanoTime() - start) / 1_000_000;
            s.launch = thread.getLaunch();
            s.target = thread.target();
            Check.equal(call, Session.top(thread).getLineNumber(), "program stopped line");
            s.runToEnd(thread, 120_000);
            Check.equal(7, s.target.program().exitCode(), "program exit code");
            Check.that(s.target.program().out().getContents().contains("total=25"), "program stdout in its console");
            return "program via Debug As > Program in VM: launch to first stop " + firstStopMs + " ms";
        }
    }

    /**
     * -Dvmdbg.test.workbench=tests: runs the isolation crate's tests, shows
     * the "vmdbg Tests" view with the failed test selected (tests-view.png);
     * then, with a breakpoint inside that test, the view's "Debug test"
     * opens it in the debugger, stopped on the test's own thread in the
     * Debug perspective (tests-debug.png).
     */
    private String testsView() throws Exception {
        DebugUITools.getPreferenceStore().setValue("org.eclipse.debug.ui.switch_perspective_on_suspend", "always");
        var launch = TestsViewScenario.config().launch(org.eclipse.debug.core.ILaunchManager.RUN_MODE, null);
        vmdbg.eclipse.testrun.TestRun run = TestsViewScenario.await(launch);
        Check.equal(1L, run.count("failed"), "failed: " + TestsViewScenario.describe(run, launch));
        AtomicReference<VmdbgTestsView> shown = new AtomicReference<>();
        ui(() -> {
            IWorkbenchWindow window = PlatformUI.getWorkbench().getActiveWorkbenchWindow();
            window.getShell().setBounds(window.getShell().getDisplay().getPrimaryMonitor().getBounds());
            IWorkbenchPage page = window.getActivePage();
            var view = (VmdbgTestsView) page.showView(VmdbgTestsView.ID);
            page.setPartState(page.getReference(view), IWorkbenchPage.STATE_MAXIMIZED);
            view.select("tests::deliberately_fails");
            shown.set(view);
        });
        // The table fills in and the details follow the selection from the UI's event queue.
        AtomicReference<String> shownTests = new AtomicReference<>("");
        Wait.until("the vmdbg Tests view shows the run with tests::deliberately_fails selected and its failure", UI_MS, () -> {
            ui(() -> shownTests.set(testsViewContent()));
            return shownTests.get().startsWith("8 rows; selected tests::deliberately_fails | failed")
                && shownTests.get().contains("deliberately wrong arithmetic");
        }, shownTests::get);
        screenshot("tests-view.png");

        File lib = new File(Env.repo(), "tests/guests/isolation/src/lib.rs");
        int assertion = Env.lineContaining(lib, "\"deliberately wrong arithmetic\"");
        Session.onlyBreakpoint(lib, assertion);
        String stoppedOn;
        long firstStopMs;
        try (Session s = new Session()) {
            long start = System.nanoTime();
            ui(() -> {
                IWorkbenchPage page = PlatformUI.getWorkbench().getActiveWorkbenchWindow().getActivePage();
                page.setPartState(page.getReference(shown.get()), IWorkbenchPage.STATE_RESTORED);
                var debug = shown.get().action("Debug test");
                Check.that(debug != null, "the view has a Debug test action");
                debug.run();
            });
            VmdbgThread thread = s.suspended(DebugEvent.BREAKPOINT, VmdbgDebugTarget.LAUNCH_MS);
            firstStopMs = (System.nanoTime() - start) / 1_000_000;
            s.launch = thread.getLaunch();
            s.target = thread.target();
            stoppedOn = thread.getName();
            Check.that(stoppedOn.startsWith("tests::delibera"), "stopped on the test's thread: " + stoppedOn);
            Check.equal(assertion, Session.top(thread).getLineNumber(), "stopped line in tests::deliberately_fails");
            ui(() -> {
                IWorkbenchPage page = PlatformUI.getWorkbench().getActiveWorkbenchWindow().getActivePage();
                page.showView(IDebugUIConstants.ID_VARIABLE_VIEW);
                page.showView(VmdbgTestsView.ID, null, IWorkbenchPage.VIEW_VISIBLE);
                page.showView(IDebugUIConstants.ID_DEBUG_VIEW);
            });
            // The Debug view selects the stopped thread's top frame, the editor shows its line and the
            // Variables view the test's local (the views update from jobs: a loaded machine takes seconds).
            awaitShown(thread, "lib.rs", "sum", "2");
            screenshot("tests-debug.png");
        }
        return run.summary() + "; Debug test on tests::deliberately_fails: launch to first stop " + firstStopMs + " ms on " + stoppedOn;
    }

    /** How long the views may take to show a state (they update from jobs; the machine is loaded). */
    private static final long UI_MS = 60_000;

    /**
     * Waits until the workbench shows the stop of `thread`, as a person
     * would see it: the Debug view has its top frame selected, the editor
     * `editorTitle` is active, and the Variables view has a row for
     * `variable` with `value`.
     */
    private static void awaitShown(VmdbgThread thread, String editorTitle, String variable, String value) throws Exception {
        AtomicReference<String> seen = new AtomicReference<>("");
        java.util.regex.Pattern row = java.util.regex.Pattern.compile(
            "(^|\\W)" + java.util.regex.Pattern.quote(variable) + "\\W.*(^|\\W)" + java.util.regex.Pattern.quote(value) + "(\\W|$)");
        Wait.until("the Debug view on " + thread.getName() + "'s top frame, " + editorTitle + " open and " + variable + " = " + value
            + " in the Variables view", UI_MS, () -> {
                ui(() -> {
                    IWorkbenchPage page = PlatformUI.getWorkbench().getActiveWorkbenchWindow().getActivePage();
                    Object selected = ((org.eclipse.jface.viewers.IStructuredSelection) page.getSelection(IDebugUIConstants.ID_DEBUG_VIEW))
                        .getFirstElement();
                    var editor = page.getActiveEditor();
                    String title = editor == null ? "no editor" : editor.getTitle();
                    boolean onTop = selected instanceof VmdbgStackFrame f && f.getThread() == thread && f == thread.getTopStackFrame();
                    java.util.List<String> variables = rows(page, IDebugUIConstants.ID_VARIABLE_VIEW);
                    boolean shown = variables.stream().anyMatch(r -> row.matcher(r).find());
                    seen.set(onTop && title.equals(editorTitle) && shown ? "shown"
                        : "Debug view selection " + selected + ", editor " + title + ", Variables view rows " + variables);
                });
                return seen.get().equals("shown");
            }, seen::get);
    }

    /** The rows a debug view's tree shows now, each row's columns joined by " | " (what is on the screen, not the model). */
    private static java.util.List<String> rows(IWorkbenchPage page, String viewId) {
        java.util.List<String> rows = new java.util.ArrayList<>();
        var view = page.findView(viewId);
        if (!(view instanceof org.eclipse.debug.ui.IDebugView debugView) || debugView.getViewer() == null) return rows;
        if (debugView.getViewer().getControl() instanceof org.eclipse.swt.widgets.Tree tree) {
            for (var item : tree.getItems()) {
                StringBuilder text = new StringBuilder(item.getText());
                for (int c = 1; c < tree.getColumnCount(); c++) text.append(" | ").append(item.getText(c));
                rows.add(text.toString());
            }
        }
        return rows;
    }

    /**
     * What the "vmdbg Tests" view shows now, read from its widgets: "N rows;
     * selected NAME | RESULT | TIME; details TEXT".
     */
    private static String testsViewContent() {
        var page = PlatformUI.getWorkbench().getActiveWorkbenchWindow().getActivePage();
        var view = page.findView(VmdbgTestsView.ID);
        if (view == null) return "no vmdbg Tests view";
        var table = findTable(page.getWorkbenchWindow().getShell(), "Test");
        if (table == null) return "no table with a Test column";
        StringBuilder s = new StringBuilder().append(table.getItemCount()).append(" rows; selected");
        for (var item : table.getSelection()) {
            s.append(' ').append(item.getText(0)).append(" | ").append(item.getText(1)).append(" | ").append(item.getText(2));
        }
        for (var sibling : table.getParent().getChildren()) {
            if (sibling instanceof org.eclipse.swt.widgets.Text details) s.append("; details ").append(details.getText());
        }
        return s.toString();
    }

    /** The first visible table under `root` whose first column is titled `firstColumn`. */
    private static org.eclipse.swt.widgets.Table findTable(org.eclipse.swt.widgets.Control root, String firstColumn) {
        if (root instanceof org.eclipse.swt.widgets.Table t && t.isVisible() && t.getColumnCount() > 0
            && firstColumn.equals(t.getColumn(0).getText())) return t;
        if (root instanceof org.eclipse.swt.widgets.Composite c) {
            for (var child : c.getChildren()) {
                var found = findTable(child, firstColumn);
                if (found != null) return found;
            }
        }
        return null;
    }

    /** Asks the test script to take the screen as test-output/NAME, and waits until it has. */
    private static void screenshot(String name) throws Exception {
        java.nio.file.Path ready = new File(Env.prop("vmdbg.test.ready")).toPath();
        File done = new File(Env.prop("vmdbg.test.done"));
        Files.deleteIfExists(done.toPath());
        java.nio.file.Path draft = ready.resolveSibling("ready.tmp");
        Files.writeString(draft, name);
        Files.move(draft, ready, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        Wait.until("the test script took the screenshot " + name, 60_000, done::exists);
    }

    private interface UiWork {
        void run() throws Exception;
    }

    private static void ui(UiWork work) throws Exception {
        AtomicReference<Exception> failure = new AtomicReference<>();
        Display.getDefault().syncExec(() -> {
            try {
                work.run();
            } catch (Exception e) {
                failure.set(e);
            }
        });
        if (failure.get() != null) throw failure.get();
    }
}
