#!/usr/bin/env bash
# Regenerates packages/store/fixtures/nar/ from real Nix 2.8: the NAR of the tricky tree,
# its hashes in every type and encoding, and the store paths `nix-store --add[-fixed]` gives.
# Tests compare drover against these without needing Nix; test/ also runs Nix live.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/packages/store/fixtures/nar
store=/tmp/drover-fixture-store   # fixed, so the fixture paths are stable
work=$(mktemp -d)
trap 'chmod -R u+w "$work" "$store" 2>/dev/null; rm -rf "$work" "$store"' EXIT
rm -rf "$store"; mkdir -p "$store" "$work/etc" "$out"
export NIX_STORE_DIR=$store NIX_STATE_DIR=$work/var NIX_LOG_DIR=$work/log NIX_CONF_DIR=$work/etc
printf 'sandbox = false\nbuild-users-group =\nexperimental-features = nix-command\n' > "$work/etc/nix.conf"
"$root/tools/make-tricky-tree.sh" "$work/tree"
nix-store --dump "$work/tree" > "$out/tricky.nar"
{
  printf '{\n  "storeDir": "%s",\n  "hashes": {\n' "$store"
  sep=''
  for t in md5 sha1 sha256 sha512; do
    printf '%s    "%s": { "base16": "%s", "base32": "%s", "base64": "%s", "sri": "%s", "flat-base16": "%s" }' "$sep" "$t" \
      "$(nix-hash --type $t "$work/tree")" "$(nix-hash --type $t --base32 "$work/tree")" \
      "$(nix hash path --type $t --base64 "$work/tree")" "$(nix hash path --type $t --sri "$work/tree")" \
      "$(nix-hash --type $t --flat "$work/tree/plain")"
    sep=$',\n'
  done
  printf '\n  },\n  "add": "%s",\n  "addFixed": {\n' "$(nix-store --add "$work/tree")"
  sep=''
  for t in md5 sha1 sha256 sha512; do
    printf '%s    "%s": { "flat": "%s", "recursive": "%s" }' "$sep" "$t" \
      "$(nix-store --add-fixed $t "$work/tree/plain")" "$(nix-store --add-fixed --recursive $t "$work/tree")"
    sep=$',\n'
  done
  printf '\n  }\n}\n'
} > "$out/expected.json"
echo "wrote $out/tricky.nar and $out/expected.json" >&2
