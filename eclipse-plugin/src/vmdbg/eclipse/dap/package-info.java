/**
 * The DAP client: starting `vmdbg dap`, Content-Length framing, requests
 * matched to responses by seq, events. Owns the wire; must not know
 * Eclipse (no org.eclipse imports), so it can be tested and reused alone.
 */
package vmdbg.eclipse.dap;
