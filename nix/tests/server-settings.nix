# Tests of nix/server-settings.nix against the committed fixture store
# (fixtures/store: public files of a store generated from
# tests/fixtures/insecure/example.json).
let
  s = import ../server-settings.nix;
  store = import ../store.nix;
  seeds = import ../seeds.nix;
  serverJson = store.serverJson ./fixtures/store;
  manifest = store.manifest ./fixtures/store;

  sys = "AD2S5PXFOZ5YEYN3B5H75SUMKIJO4OBZCC74YDA5OB3E3LUGU4RDKCMD";
  accounts = [
    "AAAKHE525HVZE3QDKLR6BPH3LAUVAKHHUB5UKM5UKG7UYPZV3F2VNNTD"
    "AAP37Z3WCSFPLNURETBQVBYNYGOXTGL5B3ZVG7YBS4LYQ36KUWZVILXL"
    "ABCPXIXQEYVA4XOU5H2FKT7AXB7CK6SNQCODYCP6KR4MLZMH2DIEUAV6"
    sys
  ];

  memory = s.settings { inherit serverJson; };
  full = s.settings {
    inherit serverJson;
    resolver = "full";
  };
  fullSrv = s.settings {
    inherit serverJson;
    resolver = "full";
    dataDir = "/srv/nats";
  };
  mergeLeft = {
    a = {
      x = 1;
      y = [ 1 ];
    };
    b = 2;
  };
  mergeRight = {
    a.y = [ 2 ];
    b = {
      z = 3;
    };
    c = null;
  };
  withoutSys = serverJson // {
    resolver_preload = builtins.removeAttrs serverJson.resolver_preload [ sys ];
  };
  fails = v: !(builtins.tryEval (builtins.deepSeq v v)).success;
in
import ./harness.nix {
  "memory: exactly operator, system account, resolver and preload" = {
    expr = builtins.attrNames memory;
    expected = [
      "operator"
      "resolver"
      "resolver_preload"
      "system_account"
    ];
  };

  "memory: the operator JWT of server.json, inline" = {
    expr = {
      header = builtins.substring 0 36 memory.operator;
      same = memory.operator == serverJson.operator;
    };
    expected = {
      header = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5";
      same = true;
    };
  };

  "memory: system account and MEMORY resolver" = {
    expr = {
      inherit (memory) system_account resolver;
    };
    expected = {
      system_account = sys;
      resolver = "MEMORY";
    };
  };

  "memory: every account of server.json is preloaded with its JWT" = {
    expr = {
      keys = builtins.attrNames memory.resolver_preload;
      same = memory.resolver_preload == serverJson.resolver_preload;
    };
    expected = {
      keys = accounts;
      same = true;
    };
  };

  "fixture: the preloaded accounts are the manifest's accounts" = {
    expr = builtins.sort builtins.lessThan (map (a: a.public_key) manifest.accounts);
    expected = accounts;
  };

  "full: a JWT directory under the data dir, deletes refused" = {
    expr = full.resolver;
    expected = {
      type = "full";
      dir = "/var/lib/nats/jwt";
      allow_delete = false;
      interval = "2m";
      timeout = "1.9s";
    };
  };

  "full: only the system account is preloaded" = {
    expr = {
      keys = builtins.attrNames full.resolver_preload;
      same = full.resolver_preload.${sys} == serverJson.resolver_preload.${sys};
    };
    expected = {
      keys = [ sys ];
      same = true;
    };
  };

  "full: the directory follows services.nats.dataDir" = {
    expr = fullSrv.resolver.dir;
    expected = "/srv/nats/jwt";
  };

  "max_payload of server.json is passed through, and extra still wins" = {
    expr = {
      passed = (s.settings { serverJson = serverJson // { max_payload = 10485760; }; }).max_payload;
      overridden =
        (s.settings {
          serverJson = serverJson // { max_payload = 10485760; };
          extra.max_payload = 2097152;
        }).max_payload;
    };
    expected = {
      passed = 10485760;
      overridden = 2097152;
    };
  };

  "extra settings are merged last, recursively" = {
    expr =
      let
        merged = s.settings {
          inherit serverJson;
          resolver = "full";
          extra = {
            max_payload = 8388608;
            resolver.interval = "5m";
            system_account = "AOVERRIDDEN";
          };
        };
      in
      {
        inherit (merged) max_payload system_account;
        inherit (merged.resolver) interval dir allow_delete;
      };
    expected = {
      max_payload = 8388608;
      system_account = "AOVERRIDDEN";
      interval = "5m";
      dir = "/var/lib/nats/jwt";
      allow_delete = false;
    };
  };

  "merge: sets merge key by key, other values (lists too) are replaced" = {
    expr = s.merge mergeLeft mergeRight;
    expected = {
      a = {
        x = 1;
        y = [ 2 ];
      };
      b = {
        z = 3;
      };
      c = null;
    };
  };

  "no nkey seed in the settings" = {
    expr = seeds.count (builtins.toJSON memory) + seeds.count (builtins.toJSON full);
    expected = 0;
  };

  "check: the fixture server.json is fine" = {
    expr = s.check serverJson;
    expected = [ ];
  };

  "check: every problem is listed, with the key it concerns" = {
    expr = s.check {
      operator = "not-a-jwt";
      system_account = "UAAAA";
      resolver_preload = {
        "AAP37Z3WCSFPLNURETBQVBYNYGOXTGL5B3ZVG7YBS4LYQ36KUWZVILXL" = "eyJhbGciOiJub25lIn0.e30";
        "bad key" = serverJson.operator;
      };
    };
    expected = [
      "\"operator\" must be the operator JWT"
      "\"system_account\" must be an account public key (A…)"
      "resolver_preload: \"bad key\" is not an account public key"
      "resolver_preload.AAP37Z3WCSFPLNURETBQVBYNYGOXTGL5B3ZVG7YBS4LYQ36KUWZVILXL: not a JWT"
    ];
  };

  "check: the system account must be preloaded" = {
    expr = s.check withoutSys;
    expected = [ "resolver_preload has no JWT for the system account \"${sys}\"" ];
  };

  "check: not an object, or fields missing" = {
    expr = [
      (s.check [ ])
      (s.check { })
    ];
    expected = [
      [ "server.json is not a JSON object" ]
      [
        "\"operator\" must be the operator JWT"
        "\"system_account\" must be an account public key (A…)"
        "\"resolver_preload\" must map account public keys to account JWTs"
      ]
    ];
  };

  "settings refuses a bad server.json, resolverFor an unknown resolver" = {
    expr = {
      badJson = fails (s.settings { serverJson = { }; });
      badResolver = fails (s.resolverFor { resolver = "disk"; });
    };
    expected = {
      badJson = true;
      badResolver = true;
    };
  };
}
