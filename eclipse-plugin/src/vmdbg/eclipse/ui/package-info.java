/**
 * The workbench side: launch tabs, the "Program in VM" shortcut, toggling
 * breakpoints from text editors, a vmdbg breakpoint's Properties page and
 * the Breakpoints view's "Add vmdbg Function Breakpoint", the model presentation (labels,
 * which editor shows a source), and the "vmdbg Tests" view and tab, which
 * show and edit what the testrun package holds. Holds no session state.
 */
package vmdbg.eclipse.ui;
