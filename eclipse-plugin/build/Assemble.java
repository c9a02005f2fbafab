// Assembles a runnable Eclipse 4.26 from the files of Debian's unpacked
// packages (TESTING.md, "Eclipse on these machines"): Debian ships the
// platform only as single bundles and declares build-time dependencies, so
// the bundles are gathered into one plugins/ folder, the gaps Debian leaves
// are bridged, and a config.ini lists every bundle.
//
// Run with the JDK's source launcher:
//   java Assemble.java UNPACKED_ROOT ECLIPSE_DIR
// UNPACKED_ROOT is where the .debs were unpacked with dpkg -x.
import java.io.*;
import java.nio.file.*;
import java.util.*;
import java.util.jar.*;
import java.util.regex.*;
import java.util.stream.*;
import java.util.zip.*;

public class Assemble {
    /** The OSGi service APIs Eclipse 4.26 takes from bundles of their own (Maven Central's), here cut from Debian's osgi.cmpn jar. */
    static final String[] CMPN_BUNDLES = {
        "org.osgi.service.cm", "org.osgi.service.component", "org.osgi.service.event", "org.osgi.service.metatype",
        "org.osgi.service.prefs", "org.osgi.service.device", "org.osgi.service.provisioning", "org.osgi.service.upnp",
        "org.osgi.service.useradmin", "org.osgi.service.wireadmin", "org.osgi.util.function", "org.osgi.util.promise",
    };
    /** Debian's SWT jar is 4.26's SWT but says 3.114.100; the workbench requires [3.117,4). */
    static final String SWT_VERSION = "3.122.0";
    /** Bundles that must run before the workbench asks for their services. */
    static final Map<String, String> START = Map.of(
        "org.eclipse.equinox.common", "@2:start",
        "org.apache.felix.scr", "@2:start",
        "org.eclipse.equinox.event", "@2:start",
        "org.eclipse.core.runtime", "@start");

    record Bundle(String name, String version, Path jar) {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) throw new IllegalArgumentException("usage: java Assemble.java UNPACKED_ROOT ECLIPSE_DIR");
        Path root = Paths.get(args[0]);
        Path eclipse = Paths.get(args[1]);
        Path plugins = eclipse.resolve("plugins");
        Files.createDirectories(plugins);

        Map<String, Bundle> bundles = new TreeMap<>();
        List<Path> candidates = new ArrayList<>();
        for (String dir : new String[] {"usr/lib/eclipse/plugins", "usr/share/java"}) {
            Path d = root.resolve(dir);
            if (!Files.isDirectory(d)) continue;
            try (Stream<Path> s = Files.list(d)) {
                s.filter(p -> p.toString().endsWith(".jar")).sorted().forEach(candidates::add);
            }
        }
        for (Path jar : candidates) {
            Path real = jar.toRealPath();
            Manifest mf;
            try (JarFile jf = new JarFile(real.toFile())) {
                mf = jf.getManifest();
            } catch (ZipException e) {
                continue;
            }
            String name = jar.getFileName().toString();
            if (mf == null || mf.getMainAttributes().getValue("Bundle-SymbolicName") == null) {
                // Debian's bouncycastle jars carry no OSGi headers; Maven Central's are bundles "bcprov" and "bcpg".
                Matcher m = Pattern.compile("^(bcprov|bcpg)-([0-9.]+)\\.jar$").matcher(name);
                if (m.matches()) {
                    Path out = plugins.resolve(m.group(1) + "_" + m.group(2) + ".jar");
                    wrap(real, out, m.group(1), m.group(2) + ".0", null);
                    put(bundles, new Bundle(m.group(1), m.group(2) + ".0", out));
                }
                if (name.equals("osgi.cmpn-7.0.0.jar")) {
                    for (String bsn : CMPN_BUNDLES) {
                        Path out = plugins.resolve(bsn + ".jar");
                        String version = wrap(real, out, bsn, null, bsn);
                        put(bundles, new Bundle(bsn, version, out));
                    }
                }
                continue;
            }
            Attributes a = mf.getMainAttributes();
            String bsn = a.getValue("Bundle-SymbolicName").split(";")[0].trim();
            String version = a.getValue("Bundle-Version") == null ? "0.0.0" : a.getValue("Bundle-Version").trim();
            if (bsn.equals("org.eclipse.swt")) version = SWT_VERSION;
            Bundle old = bundles.get(bsn);
            if (old != null && compare(old.version, version) >= 0) continue;
            Path out = plugins.resolve(bsn + "_" + version + ".jar");
            if (bsn.equals("org.eclipse.swt")) {
                restamp(real, out, version);
            } else {
                Files.copy(real, out, StandardCopyOption.REPLACE_EXISTING);
            }
            if (old != null && !old.jar.equals(out)) Files.deleteIfExists(old.jar);
            bundles.put(bsn, new Bundle(bsn, version, out));
        }
        if (!bundles.containsKey("org.eclipse.osgi") || !bundles.containsKey("org.eclipse.equinox.launcher")) {
            throw new IllegalStateException("org.eclipse.osgi or the equinox launcher is missing from " + root);
        }

        Path config = eclipse.resolve("configuration");
        Files.createDirectories(config);
        StringBuilder list = new StringBuilder();
        for (Bundle b : bundles.values()) {
            // The framework itself and the launcher are not bundles to install.
            if (b.name.equals("org.eclipse.osgi") || b.name.equals("org.eclipse.equinox.launcher")) continue;
            if (list.length() > 0) list.append(",\\\n  ");
            list.append("reference:file:").append(b.jar.toAbsolutePath()).append(START.getOrDefault(b.name, ""));
        }
        String ini = "# Written by eclipse-plugin/build/Assemble.java\n"
            + "osgi.bundles=" + list + "\n"
            + "osgi.bundles.defaultStartLevel=4\n"
            + "osgi.framework=file:" + bundles.get("org.eclipse.osgi").jar.toAbsolutePath() + "\n"
            + "osgi.instance.area.default=@user.home/eclipse-workspace\n";
        Files.writeString(config.resolve("config.ini"), ini);
        System.out.println("assembled " + bundles.size() + " bundles into " + plugins);
    }

    static void put(Map<String, Bundle> bundles, Bundle b) {
        bundles.put(b.name, b);
    }

    static int compare(String a, String b) {
        String[] x = a.split("\\."), y = b.split("\\.");
        for (int i = 0; i < Math.max(x.length, y.length); i++) {
            String p = i < x.length ? x[i] : "0", q = i < y.length ? y[i] : "0";
            int c;
            try {
                c = Long.compare(Long.parseLong(p), Long.parseLong(q));
            } catch (NumberFormatException e) {
                c = p.compareTo(q);
            }
            if (c != 0) return c;
        }
        return 0;
    }

    /** Copies a bundle with only its Bundle-Version changed. */
    static void restamp(Path in, Path out, String version) throws IOException {
        try (JarFile jf = new JarFile(in.toFile())) {
            Manifest mf = new Manifest(jf.getManifest());
            mf.getMainAttributes().putValue("Bundle-Version", version);
            copyEntries(jf, out, mf, n -> true);
        }
    }

    /**
     * Makes a bundle of a plain jar: every package (or, with prefix, the
     * packages under prefix) exported at the version its package-info
     * declares, else at version. Returns the bundle's version.
     */
    static String wrap(Path in, Path out, String bsn, String version, String prefix) throws IOException {
        try (JarFile jf = new JarFile(in.toFile())) {
            String dirPrefix = prefix == null ? null : prefix.replace('.', '/') + "/";
            Map<String, String> packages = new TreeMap<>();
            for (JarEntry e : Collections.list(jf.entries())) {
                String n = e.getName();
                if (!n.endsWith(".class") || n.startsWith("META-INF/")) continue;
                if (dirPrefix != null && !n.startsWith(dirPrefix)) continue;
                String pkg = n.substring(0, n.lastIndexOf('/')).replace('/', '.');
                packages.putIfAbsent(pkg, version);
                if (n.endsWith("/package-info.class")) {
                    String v = packageVersion(jf.getInputStream(e).readAllBytes());
                    if (v != null) packages.put(pkg, v);
                }
            }
            if (packages.isEmpty()) throw new IllegalStateException("no classes under " + prefix + " in " + in);
            String bundleVersion = version != null ? version : packages.getOrDefault(prefix, "1.0.0");
            if (bundleVersion == null) bundleVersion = "1.0.0";
            Manifest mf = new Manifest();
            Attributes a = mf.getMainAttributes();
            a.putValue("Manifest-Version", "1.0");
            a.putValue("Bundle-ManifestVersion", "2");
            a.putValue("Bundle-SymbolicName", bsn);
            a.putValue("Bundle-Version", bundleVersion);
            a.putValue("Export-Package", packages.entrySet().stream()
                .map(p -> p.getKey() + (p.getValue() == null ? "" : ";version=\"" + p.getValue() + "\""))
                .collect(Collectors.joining(",")));
            // Cross-references between these APIs (promise → function, dto → framework) resolve when first used.
            a.putValue("DynamicImport-Package", "*");
            copyEntries(jf, out, mf, n -> (dirPrefix == null || n.startsWith(dirPrefix)) && !n.startsWith("META-INF/"));
            return bundleVersion;
        }
    }

    static void copyEntries(JarFile jf, Path out, Manifest mf, java.util.function.Predicate<String> keep) throws IOException {
        Path tmp = out.resolveSibling(out.getFileName() + ".tmp");
        try (JarOutputStream jos = new JarOutputStream(Files.newOutputStream(tmp), mf)) {
            for (JarEntry e : Collections.list(jf.entries())) {
                String n = e.getName();
                if (n.equalsIgnoreCase("META-INF/MANIFEST.MF") || e.isDirectory() || !keep.test(n)) continue;
                jos.putNextEntry(new JarEntry(n));
                try (InputStream is = jf.getInputStream(e)) {
                    is.transferTo(jos);
                }
                jos.closeEntry();
            }
        }
        Files.move(tmp, out, StandardCopyOption.REPLACE_EXISTING);
    }

    /** The @org.osgi.annotation.versioning.Version value in a package-info class's constant pool. */
    static String packageVersion(byte[] cls) throws IOException {
        DataInputStream in = new DataInputStream(new ByteArrayInputStream(cls));
        in.readInt();
        in.readUnsignedShort();
        in.readUnsignedShort();
        int count = in.readUnsignedShort();
        boolean sawVersion = false;
        String candidate = null;
        for (int i = 1; i < count; i++) {
            int tag = in.readUnsignedByte();
            switch (tag) {
                case 1 -> {
                    String s = in.readUTF();
                    if (s.equals("Lorg/osgi/annotation/versioning/Version;")) sawVersion = true;
                    else if (candidate == null && s.matches("\\d+\\.\\d+(\\.\\d+)?")) candidate = s;
                }
                case 3, 4 -> in.readInt();
                case 5, 6 -> { in.readLong(); i++; }
                case 7, 8, 16, 19, 20 -> in.readUnsignedShort();
                case 9, 10, 11, 12, 17, 18 -> in.readInt();
                case 15 -> { in.readUnsignedByte(); in.readUnsignedShort(); }
                default -> throw new IOException("bad constant pool tag " + tag);
            }
        }
        return sawVersion ? candidate : null;
    }
}
