#!/usr/bin/env bash
# Builds the plugin jar (and, with --tests, the test bundle) with plain
# javac and jar against the bundles of an assembled Eclipse: no Tycho, no
# PDE. Usage: build.sh ECLIPSE_DIR OUT_DIR [--tests]
# Writes OUT_DIR/vmdbg-eclipse-<version>.jar [and OUT_DIR/vmdbg-eclipse-tests.jar].
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
eclipse="${1:?usage: build.sh ECLIPSE_DIR OUT_DIR [--tests]}"
out="${2:?usage: build.sh ECLIPSE_DIR OUT_DIR [--tests]}"
[ -d "$eclipse/plugins" ] || { echo "build.sh: $eclipse/plugins is missing (run .ci/setup-tests.d/eclipse.sh)" >&2; exit 1; }
mkdir -p "$out"
cp="$(find "$eclipse/plugins" -name '*.jar' | sort | paste -sd:)"

bundle() { # NAME SRC_DIR MANIFEST_DIR JAR [EXTRA_CP]
    local classes="$out/classes-$1"
    rm -rf "$classes"; mkdir -p "$classes"
    javac --release 17 -nowarn -encoding UTF-8 -cp "$cp${5:+:$5}" -d "$classes" $(find "$2" -name '*.java')
    cp "$3/plugin.xml" "$classes/"
    [ -d "$3/icons" ] && cp -r "$3/icons" "$classes/"
    jar --create --file "$4.tmp" --manifest "$3/META-INF/MANIFEST.MF" -C "$classes" .
    mv "$4.tmp" "$4"
    rm -rf "$classes"
}

version="$(sed -n 's/^Bundle-Version: *//p' "$here/META-INF/MANIFEST.MF" | tr -d '\r')"
plugin="$out/vmdbg-eclipse-$version.jar"
bundle plugin "$here/src" "$here" "$plugin"
echo "$plugin"
if [ "${3:-}" = --tests ]; then
    bundle tests "$here/tests/src" "$here/tests" "$out/vmdbg-eclipse-tests.jar" "$plugin"
    echo "$out/vmdbg-eclipse-tests.jar"
fi
