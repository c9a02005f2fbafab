package vmdbg.eclipse.dap;

/** A DAP request that failed: the adapter's error message, a timeout, or a closed connection. */
public class DapException extends Exception {
    private static final long serialVersionUID = 1L;

    public DapException(String message) {
        super(message);
    }
}
