# Tests of nix/store.nix: file names inside a store, whatever form it has.
let
  st = import ../store.nix;
  fakeDrv = {
    type = "derivation";
    outPath = "/nix/store/0000000000000000000000000000000-clan-nats-store";
  };
  manifest = st.manifest ./fixtures/store;

  # Format 2. store-v2 is store (format 1) split as clan-nats splits it;
  # store-v2-small is made up: accounts SYS, ops, app, empty in that (unsorted)
  # order, app's users worker then api, hosts web1, web2 and idle (no user
  # lists idle). See fixtures/README.md.
  small = ./fixtures/store-v2-small;
  smallRoot = st.readJSON small "manifest.json";
  m2 = st.manifest small;
  names = map (x: x.name);
  byName =
    xs:
    builtins.listToAttrs (
      map (x: {
        inherit (x) name;
        value = x;
      }) xs
    );

  # Every format-1 fixture, as read by st.manifest and as parsed.
  format1 = [
    ./fixtures/store
    ./fixtures/vm/store-v1
    ./fixtures/vm/store-v2
    ./fixtures/fleet/store
  ];

  # A format-2 manifest less what only format 2 has: what format 1 would be.
  asFormat1 =
    m:
    m
    // {
      format = 1;
      accounts = map (
        a:
        builtins.removeAttrs a [
          "manifest"
          "manifest_sha256"
          "jwt_sha256"
          "inputs"
        ]
        // {
          users = map (u: builtins.removeAttrs u [ "inputs" ]) a.users;
        }
      ) m.accounts;
    };

  # Whether assembling `root` (store-v2-small's, with account `name`'s entry
  # changed by `f`) succeeds.
  assemblesWith =
    name: f:
    let
      root = smallRoot // {
        accounts = map (a: if a.name == name then f a else a) smallRoot.accounts;
      };
    in
    (builtins.tryEval (builtins.deepSeq (st.assemble small root) true)).success;
  shaOf = rel: "sha256:${builtins.hashFile "sha256" (st.file small rel)}";
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

  "manifest: a format-1 manifest is returned as it is parsed" = {
    expr = map (store: st.manifest store == st.readJSON store "manifest.json") format1;
    expected = [
      true
      true
      true
      true
    ];
  };

  "manifest: the format-1 fixtures are format 1, with users and host creds inline" = {
    expr = map (
      store:
      let
        raw = st.readJSON store "manifest.json";
      in
      raw.format == 1
      && builtins.all (a: a ? users && !(a ? manifest)) raw.accounts
      && builtins.all (h: h ? creds) raw.hosts
    ) format1;
    expected = [
      true
      true
      true
      true
    ];
  };

  "manifest: the format-2 fixtures' root has no users and no host creds" = {
    expr = map (
      store:
      let
        raw = st.readJSON store "manifest.json";
      in
      raw.format == 2
      && builtins.all (a: !(a ? users) && a ? manifest) raw.accounts
      && builtins.all (h: !(h ? creds)) raw.hosts
    ) [
      ./fixtures/store-v2
      small
    ];
    expected = [
      true
      true
    ];
  };

  "manifest: format 2, each account gets the users of its manifest.d file, in order" = {
    expr = map (a: {
      inherit (a) name;
      users = names a.users;
    }) m2.accounts;
    expected = [
      {
        name = "SYS";
        users = [ "sys" ];
      }
      {
        name = "ops";
        users = [ "monitor" ];
      }
      {
        name = "app";
        users = [
          "worker"
          "api"
        ];
      }
      {
        name = "empty";
        users = [ ];
      }
    ];
  };

  "manifest: format 2, the users are the manifest.d entries whole" = {
    expr = (byName (byName m2.accounts).app.users).api == (
      builtins.elemAt (st.readJSON small "manifest.d/app.json").users 1
    );
    expected = true;
  };

  "manifest: format 2, a host's creds are its users', in account then user order; [ ] for none" = {
    expr = map (h: {
      inherit (h) name creds;
    }) m2.hosts;
    expected = [
      {
        name = "web1";
        creds = [
          "nsc/stores/small/accounts/ops/users/monitor.creds.age"
          "nsc/stores/small/accounts/app/users/api.creds.age"
        ];
      }
      {
        name = "web2";
        creds = [
          "nsc/stores/small/accounts/app/users/worker.creds.age"
          "nsc/stores/small/accounts/app/users/api.creds.age"
        ];
      }
      {
        name = "idle";
        creds = [ ];
      }
    ];
  };

  "manifest: format 2 keeps the root's fields (format, hosts' and accounts' own)" = {
    expr = {
      inherit (m2) format generator recipients;
      operator = m2.operator.name;
      hosts = map (h: builtins.removeAttrs h [ "creds" ]) m2.hosts;
      accounts = map (a: builtins.removeAttrs a [ "users" ]) m2.accounts;
    };
    expected = {
      inherit (smallRoot) format generator recipients;
      operator = "small";
      inherit (smallRoot) hosts accounts;
    };
  };

  "manifest: format 2, keys, secrets and files of the root and every account, keys sorted" = {
    expr = {
      keys = map (k: k.public_key) m2.keys;
      secrets = builtins.attrNames m2.secrets;
      files = builtins.length (builtins.attrNames m2.files);
    };
    expected = {
      # By role, account, user (as clan-nats sorts them), not file order.
      keys = [
        "K-PLACEHOLDER-ACCOUNT-SYS"
        "K-PLACEHOLDER-ACCOUNT-APP"
        "K-PLACEHOLDER-ACCOUNT-EMPTY"
        "K-PLACEHOLDER-ACCOUNT-OPS"
        "K-PLACEHOLDER-OPERATOR"
        "K-PLACEHOLDER-OPERATOR-SIGNING"
        "K-PLACEHOLDER-USER-SYS-SYS"
        "K-PLACEHOLDER-USER-APP-API"
        "K-PLACEHOLDER-USER-APP-WORKER"
        "K-PLACEHOLDER-USER-OPS-MONITOR"
      ];
      secrets = [
        "keys/SYS.nk.age"
        "keys/app.nk.age"
        "keys/empty.nk.age"
        "keys/ops.nk.age"
        "keys/small.nk.age"
        "nsc/stores/small/accounts/SYS/users/sys.creds.age"
        "nsc/stores/small/accounts/app/users/api.creds.age"
        "nsc/stores/small/accounts/app/users/worker.creds.age"
        "nsc/stores/small/accounts/ops/users/monitor.creds.age"
      ];
      # the operator JWT; SYS's, ops', app's and empty's; sys, monitor, worker, api
      files = 9;
    };
  };

  "manifest: store-v2 assembled is store (format 1), less what only format 2 has" = {
    expr = asFormat1 (st.manifest ./fixtures/store-v2) == manifest;
    expected = true;
  };

  "manifest: store-v2's hosts get exactly store's hosts[].creds" = {
    expr = (st.manifest ./fixtures/store-v2).hosts == manifest.hosts;
    expected = true;
  };

  # Each check of an account's file alone: the path, then the digest, then
  # the account name (manifest.d/<account>.json, manifest_sha256, `account`).
  # The unchanged entry is the control.
  "assemble: refused: another path, another sha256, another account's file" = {
    expr = {
      unchanged = assemblesWith "ops" (a: a);
      # The same file by another name: digest and account are right.
      otherPath = assemblesWith "ops" (
        a: a // { manifest = "manifest.d/../manifest.d/ops.json"; }
      );
      # app's digest for ops' file.
      staleDigest = assemblesWith "ops" (
        a: a // { inherit ((byName smallRoot.accounts).app) manifest_sha256; }
      );
      # manifest.d/copied.json is a copy of ops.json: right path and digest
      # for an account "copied", but the file says "ops".
      otherAccount = assemblesWith "ops" (
        a:
        a
        // {
          name = "copied";
          manifest = "manifest.d/copied.json";
          manifest_sha256 = shaOf "manifest.d/copied.json";
        }
      );
    };
    expected = {
      unchanged = true;
      otherPath = false;
      staleDigest = false;
      otherAccount = false;
    };
  };
}
