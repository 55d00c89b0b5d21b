# A minimal runner for the helper tests: an attribute set of
#   "<what is checked>" = { expr = <value>; expected = <value>; };
# becomes { passed = [ names ]; failed = [ { name; expected; actual; } ]; }.
# Values must be JSON (no paths, no functions): nix/tests/run.sh prints the
# result with `nix-instantiate --eval --strict --json`.
tests:
let
  names = builtins.attrNames tests;
  ok = name: tests.${name}.expr == tests.${name}.expected;
in
{
  passed = builtins.filter ok names;
  failed = map (name: {
    inherit name;
    inherit (tests.${name}) expected;
    actual = tests.${name}.expr;
  }) (builtins.filter (name: !ok name) names);
}
