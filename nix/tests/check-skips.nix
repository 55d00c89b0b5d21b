# nix/check-skips.nix: the tests the Nix build leaves out. Each entry names a
# test that exists in its file (`fn <test>(`), gives a reason, and appears once.
let
  skips = import ../check-skips.nix;
  inFile = s: builtins.match ".*fn ${s.test}\\(.*" (builtins.readFile (../.. + "/${s.file}")) != null;
  names = map (s: s.test) skips;
in
import ./harness.nix {
  "every skipped test exists in the file named beside it" = {
    expr = map (s: s.test) (builtins.filter (s: !inFile s) skips);
    expected = [ ];
  };
  "every skip has a reason" = {
    expr = map (s: s.test) (builtins.filter (s: builtins.stringLength s.reason < 20) skips);
    expected = [ ];
  };
  "no test is named twice" = {
    expr = builtins.length names - builtins.length (builtins.attrNames (builtins.listToAttrs (map (n: {
      name = n;
      value = null;
    }) names)));
    expected = 0;
  };
  "only root-only tests and tests pinned to a nats-server version are left out" = {
    expr = builtins.sort builtins.lessThan (map (s: s.file) skips);
    expected = [
      "tests/faults.rs"
      "tests/fleet.rs"
      "tests/fleet.rs"
      "tests/fleet.rs"
      "tests/fleet.rs"
      "tests/permissions.rs"
      "tests/permissions.rs"
      "tests/permissions.rs"
      "tests/permissions.rs"
      "tests/security.rs"
      "tests/security.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
      "tests/wiring.rs"
    ];
  };
}
