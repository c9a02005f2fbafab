package vmdbg.eclipse.model;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.eclipse.debug.core.IStreamListener;
import org.eclipse.debug.core.model.IStreamMonitor;

/** One output stream of a session (stdout, stderr, guest console), fed from DAP `output` events. */
public class VmdbgStreamMonitor implements IStreamMonitor {
    private final StringBuilder contents = new StringBuilder();
    private final List<IStreamListener> listeners = new CopyOnWriteArrayList<>();

    public void append(String text) {
        synchronized (contents) {
            contents.append(text);
        }
        for (IStreamListener l : listeners) l.streamAppended(text, this);
    }

    @Override
    public void addListener(IStreamListener listener) {
        listeners.add(listener);
    }

    @Override
    public String getContents() {
        synchronized (contents) {
            return contents.toString();
        }
    }

    @Override
    public void removeListener(IStreamListener listener) {
        listeners.remove(listener);
    }
}
