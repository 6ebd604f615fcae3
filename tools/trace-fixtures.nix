# A small build DAG for tools/gen-trace-fixtures.sh: drover-trace's fixtures come from real Nix building it.
# Builders use /bin/sh and absolute paths only: the builds run unsandboxed with PATH unset.
{ tag ? "1" }:
let
  mk = name: deps: script: derivation {
    inherit name tag;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
    deps = deps;
  };
  alpha = mk "alpha-1.0" [] ''
    echo "building alpha"
    echo "unicode: héllo ✓ — done"
    echo 'a line with "quotes" and a \backslash'
    printf 'colour: \033[1;32mgreen\033[0m\n'
    echo alpha > $out
  '';
  beta = mk "beta-2.1" [ alpha ] ''
    echo "beta uses $deps"
    /bin/sleep 1
    echo beta > $out
  '';
  broken = mk "broken-0.3" [ alpha ] ''
    echo "compiling broken..."
    echo "broken.c:1: error: expected ';'" >&2
    echo "make: *** [all] Error 1" >&2
    exit 3
  '';
  needsBroken = mk "needs-broken-1.0" [ broken ] ''
    echo never > $out
  '';
  slow = mk "slow-5" [] ''
    echo "slow starts"
    /bin/sleep 2
    echo "slow ends"
    echo slow > $out
  '';
  badHash = derivation {
    name = "bad-hash-1";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" "echo fetched > $out" ];
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "0000000000000000000000000000000000000000000000000000";
    inherit tag;
  };
  top = mk "top-1" [ beta needsBroken slow badHash ] ''
    echo top > $out
  '';
in { inherit alpha beta broken needsBroken slow badHash top; }
