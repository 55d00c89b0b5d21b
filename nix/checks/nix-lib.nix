# checks.nix-lib: the unit tests of the builtins-only helpers (nix/tests/*.nix),
# evaluated by the flake itself. nix/tests/run.sh runs the same files with a
# bare nix-instantiate, where nixpkgs is not available.
{ pkgs }:
let
  inherit (pkgs) lib;
  dir = ../tests;
  files = lib.filter (name: lib.hasSuffix ".nix" name && name != "harness.nix") (
    lib.attrNames (builtins.readDir dir)
  );
  run =
    name:
    let
      imported = import (dir + "/${name}");
      result = if lib.isFunction imported then imported { } else imported;
    in
    {
      inherit name;
      inherit (result) passed failed;
    };
  results = map run files;
  passed = lib.concatMap (r: map (t: "${r.name}: ${t}") r.passed) results;
  failed = lib.concatMap (r: map (f: "${r.name}: ${f.name}") r.failed) results;
  failures = lib.concatMapStrings (name: "\n  ${name}") failed;
in
if failed != [ ] then
  throw "clan-nats nix helper tests failed (nix/tests/run.sh shows why):${failures}"
else
  pkgs.runCommand "clan-nats-nix-lib" { } ''
    ${lib.concatMapStrings (t: "echo ${lib.escapeShellArg "ok ${t}"}\n") passed}
    echo "nix-lib: ${toString (lib.length passed)} passed, 0 failed"
    touch $out
  ''
