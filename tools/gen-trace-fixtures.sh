#!/bin/sh
# Regenerates packages/trace/fixtures/ from real Nix (Debian's nix-bin, 2.8) building tools/trace-fixtures.nix.
# The store lives at a fixed path so that regenerated fixtures differ only where Nix's output differs.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=$here/../packages/trace/fixtures
root=${DROVER_TRACE_FIXTURE_ROOT:-/tmp/drover-trace-fixture-store}

command -v nix-build >/dev/null || { echo "gen-trace-fixtures: nix-build not found (apt-get install nix-bin)" >&2; exit 1; }
mkdir -p "$out"

. "$here/nix-temp-store.sh"
fresh_store() { fresh_nix_store 'max-jobs = 2'; }

# run NAME ARGS...: builds the DAG, keeps stderr as the fixture and the exit status beside it.
run() {
    name=$1; shift
    fresh_store
    set +e
    nixenv nix-build "$here/trace-fixtures.nix" -A top --no-out-link "$@" \
        >"$out/$name.stdout" 2>"$out/$name.trace"
    echo $? > "$out/$name.status"
    set -e
    echo "gen-trace-fixtures: $name: exit $(cat "$out/$name.status"), $(wc -l < "$out/$name.trace") lines"
}

run nix-2.8-json --log-format internal-json -v
run nix-2.8-json-keep-going --log-format internal-json -v --keep-going
run nix-2.8-plain-keep-going --keep-going

# Nix 2.0 dropped --print-build-trace; record what 2.8 says so the fixtures show it.
set +e
nixenv nix-build --print-build-trace "$here/trace-fixtures.nix" -A alpha --no-out-link \
    >/dev/null 2>"$out/nix-2.8-print-build-trace.trace"
echo $? > "$out/nix-2.8-print-build-trace.status"
set -e

nixenv nix-build --version > "$out/nix-version.txt"
rm -rf "$root"
