/**
 * The workbench side: launch tabs, the "Program in VM" shortcut, toggling
 * breakpoints from text editors, and the model presentation (labels,
 * which editor shows a source). Holds no session state.
 */
package vmdbg.eclipse.ui;
