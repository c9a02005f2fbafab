/**
 * The "vmdbg" launch configuration type: its attributes and their mapping
 * to launch.schema.json's arguments, the delegate that starts a session,
 * and source lookup (and the delegate base every vmdbg launch type shares).
 * Headless; the tabs that edit configurations are in ui.
 */
package vmdbg.eclipse.launch;
