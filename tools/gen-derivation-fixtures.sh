#!/bin/sh
# Regenerates packages/store/fixtures/derivations/ from real Nix (Debian's nix-bin, 2.8) instantiating derivations.nix there.
# The store lives at a fixed path so that the committed .drv paths and bytes are stable.
# Writes: store-dir (the store dir used), attrs (ATTR DRV-PATH per line), sources (NAME PATH of
# each input source), show.json (`nix show-derivation --recursive` of them all) and drv/ (each .drv).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fix=$here/../packages/store/fixtures/derivations
root=${DROVER_DERIVATION_FIXTURE_ROOT:-/tmp/drover-fixture-store}

command -v nix-instantiate >/dev/null || { echo "gen-derivation-fixtures: nix-instantiate not found (apt-get install nix-bin)" >&2; exit 1; }

# A store that only this script uses.
. "$here/nix-temp-store.sh"
fresh_nix_store

rm -rf "$fix/drv"
mkdir -p "$fix/drv"
printf '%s\n' "$root/store" > "$fix/store-dir"

attrs=$(nixenv nix-instantiate --eval --json --expr "builtins.attrNames (import $fix/derivations.nix)" | tr -d '[]"' | tr ',' ' ')
: > "$fix/attrs"
for a in $attrs; do
    p=$(nixenv nix-instantiate "$fix/derivations.nix" -A "$a" 2>/dev/null)
    printf '%s %s\n' "$a" "$p" >> "$fix/attrs"
done

# shellcheck disable=SC2046
nixenv nix show-derivation --recursive $(cut -d' ' -f2 "$fix/attrs") > "$fix/show.json"
for p in $(jq -r 'keys[]' "$fix/show.json"); do
    cp "$p" "$fix/drv/$(basename "$p")"
    chmod 644 "$fix/drv/$(basename "$p")"
done

jq -r '[.[].inputSrcs[]] | unique[]' "$fix/show.json" | while read -r p; do
    b=$(basename "$p")
    printf '%s %s\n' "${b#*-}" "$p"
done > "$fix/sources"

echo "gen-derivation-fixtures: $(wc -l < "$fix/attrs") attributes, $(ls "$fix/drv" | wc -l) .drv files, $(wc -l < "$fix/sources") sources in $fix"
