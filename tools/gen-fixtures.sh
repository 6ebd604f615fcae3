#!/bin/sh
# Regenerates every committed fixture from real Nix 2.8 (nix-bin): run after changing a format.
set -eu
cd "$(dirname "$0")"
for g in gen-*-fixtures.sh; do
  echo "== $g" >&2
  bash "./$g"
done
