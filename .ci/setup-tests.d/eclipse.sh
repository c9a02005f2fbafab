#!/usr/bin/env bash
# The Eclipse plugin's test tool-chain: a JDK, Xvfb and the X tools for the
# workbench screenshot, and a runnable Eclipse 4.26 assembled from Debian's
# bundle packages (TESTING.md, "Eclipse on these machines"). The assembled
# tree is cached under $XDG_CACHE_HOME/vmdbg/eclipse/<hash of this script
# and the assembler>, so a rerun only checks it is there.
#   --print-dir   prints the assembled Eclipse's directory (and assembles it first if needed)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
. "$root/.ci/lib.sh"

# libgtk-3-0 and fonts: SWT's JNI libraries link GTK 3, and a workbench
# without fonts draws empty labels.
# (stdout carries only the directory for --print-dir.)
install_missing javac:default-jdk-headless Xvfb:xvfb xdotool:xdotool xwd:x11-apps \
    libgtk-3-0 fonts-dejavu-core >&2
# /usr/local/bin/convert may be a stand-in; the real one is ImageMagick's.
[ -x /usr/bin/convert ] || install_missing imagemagick >&2

# Debian's Eclipse bundles to start from; apt resolves the rest. Beyond the
# workbench, debug UI, editors and console (and JDT's JUnit core, whose
# model the tests view imports its runs into), these are runtime
# dependencies Debian does not declare (the "Unresolved requirement" gaps).
roots=(
    libeclipse-ui-ide-application-java libeclipse-debug-ui-java libeclipse-ui-editors-java
    libeclipse-ui-console-java libeclipse-ui-genericeditor-java libgoogle-gson-java
    libequinox-launcher-java libfelix-scr-java libequinox-event-java libbatik-java
    libcommons-jxpath-java libservlet-api-java libeclipse-emf-ecore-change-java
    libeclipse-ui-navigator-resources-java libeclipse-ui-views-properties-tabbed-java
    libeclipse-ui-themes-java libeclipse-e4-ui-progress-java libeclipse-ui-monitoring-java
    libeclipse-e4-ui-swt-gtk-java libswt-gtk-4-jni libswt-cairo-gtk-4-jni libswt-glx-gtk-4-jni
    libosgi-compendium-java libeclipse-jdt-junit-core-java
)

key="$(cat "$0" "$root/eclipse-plugin/build/Assemble.java" | sha256sum | cut -c1-16)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/vmdbg/eclipse"
dest="$cache/$key"

if [ ! -e "$dest/complete" ]; then
    start=$SECONDS
    work="$cache/tmp.$$"
    rm -rf "$work"
    mkdir -p "$work/debs" "$work/unpacked"
    trap 'rm -rf "$work"' EXIT
    # apt-get download of hundreds of packages wants fresh lists.
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ] || apt-get update -qq
    # Only the Java bundles and their JNI libraries: the native libraries
    # they load (GTK, cairo) come from the system's own packages. `junit`
    # (JUnit 3.8.2, an org.junit bundle) is what JDT's JUnit runtime requires.
    mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${roots[@]}" | grep -v '^ ' | grep -E -- '-(java|jni)$|^junit$' | sort -u)
    (cd "$work/debs" && apt-get download "${pkgs[@]}" >/dev/null 2>"$work/download.log") || {
        cat "$work/download.log" >&2
        echo "eclipse: apt-get download of ${#pkgs[@]} packages failed" >&2
        exit 1
    }
    for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/unpacked"; done
    java "$root/eclipse-plugin/build/Assemble.java" "$work/unpacked" "$work/eclipse" >&2
    # SWT's native libraries and the launcher's.
    mkdir -p "$work/eclipse/jni"
    cp -L "$work"/unpacked/usr/lib/jni/*.so "$work/eclipse/jni/"
    # Assemble.java wrote absolute paths of $work/eclipse; rewrite them for the final place.
    sed -i "s#$work/eclipse#$dest#g" "$work/eclipse/configuration/config.ini"
    rm -rf "$dest"
    mv "$work/eclipse" "$dest"
    touch "$dest/complete"
    echo "eclipse: assembled ${#pkgs[@]} packages into $dest in $((SECONDS - start)) s" >&2
    # Older assemblies (another script version) are no longer used.
    find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
fi
[ "${1:-}" = --print-dir ] && echo "$dest"
exit 0
