# Sourced by the fixture generators: a throw-away Nix 2.8 store at "$root" for real Nix.
# Sets nothing up until fresh_nix_store is called; nixenv runs a command against that store.

# fresh_nix_store [EXTRA_CONF_LINE...]: empties "$root" (store paths are read-only) and writes
# a nix.conf for root without a daemon: no build-users group, no sandbox, nothing fetched.
fresh_nix_store() {
    [ -d "$root" ] && chmod -R u+w "$root"
    rm -rf "$root"
    mkdir -p "$root/store" "$root/state" "$root/log" "$root/conf"
    printf '%s\n' \
        'experimental-features = nix-command' \
        'sandbox = false' \
        'build-users-group =' \
        'substituters =' \
        "$@" > "$root/conf/nix.conf"
}

nixenv() {
    env NIX_STORE_DIR="$root/store" NIX_STATE_DIR="$root/state" NIX_LOG_DIR="$root/log" \
        NIX_CONF_DIR="$root/conf" NIX_REMOTE= HOME="$root" "$@"
}
