#!/bin/sh
# The drover demo: a C program compiled and tested inside the sandbox, as a DAG of three
# derivations written as JSON, added with drover-store and built with drover-build in the
# default store (~/.local/share/drover/store), the trace shown through drover-trace.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
store() { node "$root/packages/store/bin/drover-store.js" "$@"; }
build() { node "$root/packages/worker/bin/drover-build.js" "$@"; }
trace() { node "$root/packages/trace/bin/drover-trace.js" "$@"; }

command -v cc >/dev/null || { echo "demo: needs a C compiler (cc) on this machine" >&2; exit 1; }
# The compiler's real path: /usr/bin/cc is often a link through /etc/alternatives.
cc=$(readlink -f "$(command -v cc)")
system=$(node -e 'console.log(`${({x64:"x86_64",arm64:"aarch64"})[process.arch] ?? process.arch}-linux`)')

# Adds one JSON derivation with @placeholders@ filled in; prints its .drv path.
add() {
  file=$1; shift
  sed -e "s|@system@|$system|g" "$@" "$here/$file" | store derivation add
}

src_drv=$(add hello-src.json)
src_out=$(store query --outputs "$src_drv")
hello_drv=$(add hello.json -e "s|@src_drv@|$src_drv|g" -e "s|@src@|$src_out|g" -e "s|@cc@|$cc|g")
hello_out=$(store query --outputs "$hello_drv")
test_drv=$(add hello-test.json -e "s|@hello_drv@|$hello_drv|g" -e "s|@hello@|$hello_out|g")

echo "derivations:"
printf '  %s\n' "$src_drv" "$hello_drv" "$test_drv"
echo "building (sandboxed; the host compiler's /usr is visible read-only):"

# drover-build's stderr (trace lines, logs) goes through drover-trace; its stdout (the
# output paths) stays on stdout. The compiler lives in /usr, so /usr is added to the sandbox.
status=0
if trace --help >/dev/null 2>&1; then
  { build --print-build-trace -L --extra-sandbox-paths /usr -- "$test_drv" 2>&1 1>&3 3>&- | trace --logs 3>&-; } 3>&1 || status=$?
else
  build --print-build-trace -L --extra-sandbox-paths /usr -- "$test_drv" || status=$?
fi
[ "$status" -eq 0 ] || { echo "demo: the build failed (exit $status)" >&2; exit "$status"; }

out=$(build "$test_drv")
echo "the test's output, $out:"
sed 's/^/  /' "$out"
echo "the program: $("$hello_out/bin/hello" you)"
