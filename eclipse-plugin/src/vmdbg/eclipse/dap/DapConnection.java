package vmdbg.eclipse.dap;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;

import com.google.gson.Gson;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

/**
 * One Debug Adapter Protocol connection: Content-Length framing, requests
 * matched to their responses by seq, events handed to a listener on the
 * reader thread. Knows nothing of Eclipse, so the debug model above it
 * stays the only place that maps DAP onto Eclipse.
 */
public class DapConnection {
    private static final Gson GSON = new Gson();

    private final InputStream in;
    private final OutputStream out;
    private final AtomicInteger seq = new AtomicInteger(1);
    private final Map<Integer, CompletableFuture<JsonObject>> pending = new ConcurrentHashMap<>();
    private final Consumer<JsonObject> events;
    private final Consumer<Throwable> closed;
    private volatile boolean open = true;

    /**
     * @param events gets each event message (the whole message: event, body)
     * @param closed gets the reason once the stream ends or breaks
     */
    public DapConnection(InputStream in, OutputStream out, Consumer<JsonObject> events, Consumer<Throwable> closed) {
        this.in = new BufferedInputStream(in);
        this.out = out;
        this.events = events;
        this.closed = closed;
        Thread reader = new Thread(this::readLoop, "vmdbg DAP reader");
        reader.setDaemon(true);
        reader.start();
    }

    /** Sends a request; the future completes with the response's body, or fails with the adapter's message. */
    public CompletableFuture<JsonObject> request(String command, Object arguments) {
        CompletableFuture<JsonObject> reply = new CompletableFuture<>();
        if (!open) {
            reply.completeExceptionally(new DapException(command + ": the debug adapter has exited"));
            return reply;
        }
        int id = seq.getAndIncrement();
        JsonObject msg = new JsonObject();
        msg.addProperty("seq", id);
        msg.addProperty("type", "request");
        msg.addProperty("command", command);
        if (arguments != null) msg.add("arguments", GSON.toJsonTree(arguments));
        pending.put(id, reply);
        try {
            send(msg);
        } catch (IOException e) {
            pending.remove(id);
            reply.completeExceptionally(new DapException(command + ": cannot write to the debug adapter: " + e.getMessage()));
        }
        return reply;
    }

    /** A request waited for: the body, or a DapException with the adapter's message or the timeout. */
    public JsonObject call(String command, Object arguments, long timeoutMs) throws DapException {
        CompletableFuture<JsonObject> reply = request(command, arguments);
        try {
            return reply.get(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            throw cause instanceof DapException d ? d : new DapException(command + ": " + cause);
        } catch (TimeoutException e) {
            throw new DapException(command + ": no response from the debug adapter in " + timeoutMs + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DapException(command + ": interrupted");
        }
    }

    public boolean isOpen() {
        return open;
    }

    private synchronized void send(JsonObject msg) throws IOException {
        byte[] body = GSON.toJson(msg).getBytes(StandardCharsets.UTF_8);
        out.write(("Content-Length: " + body.length + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(body);
        out.flush();
    }

    private void readLoop() {
        Throwable reason = null;
        try {
            while (true) {
                JsonObject msg = readMessage();
                if (msg == null) break;
                dispatch(msg);
            }
        } catch (Throwable t) {
            reason = t;
        }
        open = false;
        DapException gone = new DapException("the debug adapter closed the connection"
            + (reason == null ? "" : ": " + reason.getMessage()));
        pending.values().forEach(f -> f.completeExceptionally(gone));
        pending.clear();
        closed.accept(reason);
    }

    private void dispatch(JsonObject msg) {
        String type = msg.has("type") ? msg.get("type").getAsString() : "";
        if (type.equals("response")) {
            CompletableFuture<JsonObject> reply = pending.remove(msg.get("request_seq").getAsInt());
            if (reply == null) return;
            if (msg.get("success").getAsBoolean()) {
                JsonElement body = msg.get("body");
                reply.complete(body != null && body.isJsonObject() ? body.getAsJsonObject() : new JsonObject());
            } else {
                reply.completeExceptionally(new DapException(errorText(msg)));
            }
        } else if (type.equals("event")) {
            try {
                events.accept(msg);
            } catch (RuntimeException e) {
                // One bad event handler must not stop the reader: later responses still need matching.
                e.printStackTrace();
            }
        }
    }

    /** The adapter's own words: body.error.format (with its variables), else message. */
    static String errorText(JsonObject msg) {
        String command = msg.has("command") ? msg.get("command").getAsString() : "request";
        JsonObject body = msg.has("body") && msg.get("body").isJsonObject() ? msg.getAsJsonObject("body") : null;
        if (body != null && body.has("error") && body.get("error").isJsonObject()) {
            JsonObject error = body.getAsJsonObject("error");
            if (error.has("format")) {
                String text = error.get("format").getAsString();
                if (error.has("variables") && error.get("variables").isJsonObject()) {
                    for (Map.Entry<String, JsonElement> v : error.getAsJsonObject("variables").entrySet()) {
                        text = text.replace("{" + v.getKey() + "}", v.getValue().getAsString());
                    }
                }
                return command + ": " + text;
            }
        }
        return command + ": " + (msg.has("message") ? msg.get("message").getAsString() : "failed");
    }

    private JsonObject readMessage() throws IOException {
        int length = -1;
        while (true) {
            String line = readHeaderLine();
            if (line == null) return null;
            if (line.isEmpty()) break;
            int colon = line.indexOf(':');
            if (colon > 0 && line.substring(0, colon).trim().equalsIgnoreCase("Content-Length")) {
                length = Integer.parseInt(line.substring(colon + 1).trim());
            }
        }
        if (length < 0) throw new IOException("a DAP message without Content-Length");
        byte[] body = in.readNBytes(length);
        if (body.length != length) return null;
        return JsonParser.parseString(new String(body, StandardCharsets.UTF_8)).getAsJsonObject();
    }

    private String readHeaderLine() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int c;
        while ((c = in.read()) != -1) {
            if (c == '\n') {
                String s = line.toString(StandardCharsets.US_ASCII);
                return s.endsWith("\r") ? s.substring(0, s.length() - 1) : s;
            }
            line.write(c);
        }
        return null;
    }
}
