/**
 * The Eclipse debug model over one DAP session: target, threads, frames,
 * variables, registers, line and function breakpoints with their options
 * (condition, hit condition, log message) and the consoles. Translates only:
 * stepping, breakpoints placement and value formatting stay in vmdbg. Must
 * not touch the UI (org.eclipse.ui), so it runs in headless Eclipse too.
 */
package vmdbg.eclipse.model;
