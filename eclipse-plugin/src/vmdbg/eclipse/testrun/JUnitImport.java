package vmdbg.eclipse.testrun;

import java.io.File;

import org.eclipse.core.runtime.CoreException;
import org.eclipse.core.runtime.Platform;
import org.osgi.framework.Bundle;

/**
 * Imports the `vmdbg test --junit` report into Eclipse's own JUnit model
 * (JDT's org.eclipse.jdt.junit.core), so an Eclipse with JDT lists the run
 * in its JUnit view and history. That bundle is an optional dependency:
 * this class touches it only after {@link #available()} said it is there.
 */
final class JUnitImport {
    static final String BUNDLE = "org.eclipse.jdt.junit.core";

    private JUnitImport() {
    }

    static boolean available() {
        Bundle b = Platform.getBundle(BUNDLE);
        return b != null && (b.getState() & (Bundle.RESOLVED | Bundle.STARTING | Bundle.ACTIVE)) != 0;
    }

    /** The imported session (an org.eclipse.jdt.junit.model.ITestRunSession). */
    static Object importReport(File xml) throws CoreException {
        return org.eclipse.jdt.junit.JUnitCore.importTestRunSession(xml);
    }
}
