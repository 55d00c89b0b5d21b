# Tests of nix/seeds.nix. The seed-shaped strings here are made up (all "A"),
# not keys.
let
  s = import ../seeds.nix;
  fake = kind: "S${kind}" + builtins.concatStringsSep "" (builtins.genList (_: "A") 56);
  credsLike = "-----BEGIN USER NKEY SEED-----\n${fake "U"}\n------END USER NKEY SEED------\n${fake "A"}";
  # The public fixture files (the format-2 ones whole, manifest.d/ too).
  v2 =
    dir:
    [ (dir + "/manifest.json") ]
    ++ map (f: dir + "/manifest.d/${f}") (
      builtins.attrNames (builtins.readDir (dir + "/manifest.d"))
    );
  fixtures = map builtins.readFile (
    [
      ./fixtures/store/manifest.json
      ./fixtures/store/server/server.json
    ]
    ++ v2 ./fixtures/store-v2
    ++ v2 ./fixtures/store-v2-small
  );
in
import ./harness.nix {
  "user, account and operator seeds are found" = {
    expr = map (k: s.containsSeed "x ${fake k} y") [
      "U"
      "A"
      "O"
    ];
    expected = [
      true
      true
      true
    ];
  };

  "every occurrence is counted" = {
    expr = s.count credsLike;
    expected = 2;
  };

  "public keys, JWTs and short strings are not seeds" = {
    expr = map s.containsSeed [
      "UASK2TO7B36TOTG3CYNX5ETUTBOWIIUWCLYJYP6TSSZ5LNZVZNF7GQZU"
      "AD2S5PXFOZ5YEYN3B5H75SUMKIJO4OBZCC74YDA5OB3E3LUGU4RDKCMD"
      "SX${builtins.substring 2 56 (fake "U")}"
      (builtins.substring 0 57 (fake "U"))
    ];
    expected = [
      false
      false
      false
      false
    ];
  };

  "the committed fixtures hold no seed" = {
    expr = {
      files = builtins.length fixtures;
      seeds = map s.count fixtures;
    };
    expected = {
      # store: 2; store-v2: 5 (its manifest.d has SYS, core, development,
      # media); store-v2-small: 6 (SYS, app, copied, empty, ops).
      files = 13;
      seeds = builtins.genList (_: 0) 13;
    };
  };
}
