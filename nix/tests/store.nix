# Tests of nix/store.nix: file names inside a store, whatever form it has.
let
  st = import ../store.nix;
  fakeDrv = {
    type = "derivation";
    outPath = "/nix/store/0000000000000000000000000000000-clan-nats-store";
  };
  manifest = st.manifest ./fixtures/store;
in
import ./harness.nix {
  "file: a path store stays a path (nothing is copied to read it)" = {
    expr = builtins.isPath (st.file ./fixtures/store "manifest.json");
    expected = true;
  };

  "file: a path store joins with a slash" = {
    expr = toString (st.file ./fixtures/store "server/server.json");
    expected = toString ./fixtures/store/server/server.json;
  };

  "file: a string or a derivation is interpolated" = {
    expr = [
      (st.file "/srv/nats-store" "manifest.json")
      (st.file fakeDrv "server/server.json")
    ];
    expected = [
      "/srv/nats-store/manifest.json"
      "/nix/store/0000000000000000000000000000000-clan-nats-store/server/server.json"
    ];
  };

  "manifest: the fixture is a clan-nats manifest of format 1" = {
    expr = {
      inherit (manifest) format generator;
      operator = manifest.operator.name;
    };
    expected = {
      format = 1;
      generator = "clan-nats";
      operator = "thecowboyai";
    };
  };
}
