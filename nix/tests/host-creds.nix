# Tests of nix/host-creds.nix against the committed fixture manifest
# (hosts nats1, core1, media1, dev1 of tests/fixtures/insecure/example.json),
# and against the same store in format 2 (fixtures/store-v2) and a small
# made-up format-2 store (fixtures/store-v2-small).
let
  h = import ../host-creds.nix;
  st = import ../store.nix;
  manifest = st.manifest ./fixtures/store;
  manifestV2 = st.manifest ./fixtures/store-v2;
  small = st.manifest ./fixtures/store-v2-small;

  users = "nsc/stores/thecowboyai/accounts";
  person = "${users}/core/users/person-service.creds.age";
  audio = "${users}/media/users/audio-service.creds.age";
  # How a store committed to a flake looks once evaluated.
  flakeStore = "/nix/store/0000000000000000000000000000000-source/nats-store";

  check =
    hostName: name: file:
    h.checkUser {
      inherit
        manifest
        hostName
        name
        file
        ;
    };
  opt = "services.clan-nats.credentials";
  coreUsers = "\"agent-service\", \"location-service\", \"organization-service\", \"person-service\", \"policy-service\"";
  duplicates = [
    {
      name = "person-service";
      credential = "nats.creds";
      units = [ "app" ];
    }
    {
      name = "agent-service";
      credential = "nats.creds";
      units = [ "app.service" ];
    }
    {
      name = "policy-service";
      credential = "policy.creds";
      units = [ "app" ];
    }
  ];

  # Every answer the modules get from the helpers, for every host and user
  # of `m` and one unknown of each: the same store must give the same ones
  # in either format.
  answers =
    m:
    let
      hosts = h.hostNames m ++ [ "printer1" ];
      names = map (u: u.name) (h.users m) ++ [ "printer-service" ];
      fileOf =
        name:
        let
          rel = h.userCreds m name;
        in
        if rel == null then null else "${flakeStore}/${rel}";
    in
    {
      hostNames = h.hostNames m;
      users = map (u: "${u.account}/${u.name}") (h.users m);
      credsOf = map (h.credsOf m) hosts;
      usersOf = map (host: map (u: u.name) (h.usersOf m host)) hosts;
      userCreds = map (h.userCreds m) names;
      # The whole entry, less format 2's `inputs` digest.
      user = map (
        name:
        let
          u = h.user m name;
        in
        if u == null then null else builtins.removeAttrs u [ "inputs" ]
      ) names;
      checkHost = map (
        hostName:
        h.checkHost {
          manifest = m;
          inherit hostName;
        }
      ) hosts;
      checkUser = builtins.concatMap (
        hostName:
        map (
          name:
          h.checkUser {
            manifest = m;
            inherit hostName name;
            file = fileOf name;
          }
        ) names
      ) hosts;
    };
in
import ./harness.nix {
  "hostNames: every host of the manifest" = {
    expr = h.hostNames manifest;
    expected = [
      "core1"
      "dev1"
      "media1"
      "nats1"
    ];
  };

  "credsOf: the server host gets only person-service" = {
    expr = h.credsOf manifest "nats1";
    expected = [ person ];
  };

  "credsOf: an unknown host gets nothing" = {
    expr = h.credsOf manifest "printer1";
    expected = [ ];
  };

  "usersOf: core1 runs the five Core services" = {
    expr = map (u: u.name) (h.usersOf manifest "core1");
    expected = [
      "agent-service"
      "location-service"
      "organization-service"
      "person-service"
      "policy-service"
    ];
  };

  "userCreds: a user's creds file, with its account; null for no such user" = {
    expr = {
      audio = h.userCreds manifest "audio-service";
      account = (h.user manifest "audio-service").account;
      nobody = h.userCreds manifest "printer-service";
    };
    expected = {
      inherit audio;
      account = "media";
      nobody = null;
    };
  };

  "userCreds: sys exists but is no host's" = {
    expr = {
      creds = h.userCreds manifest "sys";
      hosts = (h.user manifest "sys").hosts;
    };
    expected = {
      creds = "${users}/SYS/users/sys.creds.age";
      hosts = [ ];
    };
  };

  # A service person named "sys" (account core) beside the SYS account's own
  # user "sys": the service's creds, not the SYS admin's, whichever comes first.
  "user: a service named sys is looked up by account and name, not taken for SYS's user" =
    let
      sysService = {
        name = "sys";
        creds = "${users}/core/users/sys.creds.age";
        hosts = [ "core1" ];
      };
      withSys = manifest // {
        accounts = map (
          a: if a.name == "core" then a // { users = a.users ++ [ sysService ]; } else a
        ) manifest.accounts;
      };
      sysFirst = withSys // {
        accounts =
          builtins.filter (a: a.system or false) withSys.accounts
          ++ builtins.filter (a: !(a.system or false)) withSys.accounts;
      };
    in
    {
      expr = {
        creds = map (m: h.userCreds m "sys") [
          withSys
          sysFirst
        ];
        admin = (h.userIn sysFirst "SYS" "sys").creds;
      };
      expected = {
        creds = [
          sysService.creds
          sysService.creds
        ];
        admin = "${users}/SYS/users/sys.creds.age";
      };
    };

  "matchCreds: the file is compared from the store's root on" = {
    expr = {
      inFlake = h.matchCreds [ person ] "${flakeStore}/${person}";
      relative = h.matchCreds [ person ] person;
      otherUser = h.matchCreds [ person ] "${flakeStore}/${audio}";
      notAtBoundary = h.matchCreds [ person ] "/x/other-${person}";
    };
    expected = {
      inFlake = [ person ];
      relative = [ person ];
      otherUser = [ ];
      notAtBoundary = [ ];
    };
  };

  "checkUser: a host's own service is fine" = {
    expr = [
      (check "core1" "person-service" "${flakeStore}/${person}")
      (check "nats1" "person-service" "${flakeStore}/${person}")
    ];
    expected = [
      null
      null
    ];
  };

  "checkUser: another host's creds are refused, naming the option and the host" = {
    expr = check "core1" "audio-service" "${flakeStore}/${audio}";
    expected =
      "${opt}.users.audio-service: ${flakeStore}/${audio} is not assigned to host \"core1\" in the "
      + "store's manifest; host \"core1\" may have only the creds of ${coreUsers}. To give it "
      + "this service, add it to hosts[].services of \"core1\" in the clan-nats config and run "
      + "clan-nats generate again.";
  };

  "checkUser: a renamed entry cannot smuggle another host's file" = {
    expr = check "nats1" "person-service" "${flakeStore}/${audio}";
    expected =
      "${opt}.users.person-service: ${flakeStore}/${audio} is not assigned to host \"nats1\" in the "
      + "store's manifest; host \"nats1\" may have only the creds of \"person-service\". To give "
      + "it this service, add it to hosts[].services of \"nats1\" in the clan-nats config and run "
      + "clan-nats generate again.";
  };

  "checkUser: the system account's user never goes to a host" = {
    expr = check "nats1" "sys" "${flakeStore}/${users}/SYS/users/sys.creds.age" != null;
    expected = true;
  };

  "checkUser: a name the store does not know, without a file" = {
    expr = check "media1" "printer-service" null;
    expected =
      "${opt}.users.printer-service: the store has no user \"printer-service\"; host \"media1\" "
      + "may have only the creds of \"audio-service\", \"document-service\", \"video-service\". "
      + "Use one of those names, or set ${opt}.users.printer-service.file.";
  };

  "checkUser: an unknown host is left to checkHost" = {
    expr = check "printer1" "person-service" "${flakeStore}/${person}";
    expected = null;
  };

  "checkHost: an unknown host lists the known ones" = {
    expr = [
      (h.checkHost {
        inherit manifest;
        hostName = "core1";
      })
      (h.checkHost {
        inherit manifest;
        hostName = "printer1";
      })
    ];
    expected = [
      null
      (
        "${opt}.hostName: \"printer1\" is not a host of the store's manifest.json (hosts: \"core1\", "
        + "\"dev1\", \"media1\", \"nats1\"). Set ${opt}.hostName to the name this machine has in the "
        + "clan-nats config (hosts[].name), or add the host there and run clan-nats generate again."
      )
    ];
  };

  "serviceName: services with or without suffix; other unit types are null" = {
    expr = map h.serviceName [
      "person-service"
      "person-service.service"
      "worker@1.service"
      "nats.timer"
      "backup.path"
      ".service"
    ];
    expected = [
      "person-service"
      "person-service"
      "worker@1"
      null
      null
      null
    ];
  };

  "validName: file names only" = {
    expr = map h.validName [
      "person-service"
      "svc_2.prod"
      "../etc"
      "a/b"
      ".hidden"
      "-rf"
      ""
    ];
    expected = [
      true
      true
      false
      false
      false
      false
      false
    ];
  };

  "loadCredential: <credential>:<path>" = {
    expr = h.loadCredential {
      credential = "nats.creds";
      path = "/run/clan-nats/person-service.creds";
    };
    expected = "nats.creds:/run/clan-nats/person-service.creds";
  };

  "duplicateCredentials: one message per unit and credential given twice" = {
    expr = h.duplicateCredentials duplicates;
    expected = [
      (
        "${opt}.users: \"person-service\", \"agent-service\" all give credential \"nats.creds\" to "
        + "app.service; set a distinct ${opt}.users.<name>.credential for each."
      )
    ];
  };

  "duplicateCredentials: distinct units or credential names are fine" = {
    expr = h.duplicateCredentials [
      {
        name = "a";
        credential = "nats.creds";
        units = [ "x" ];
      }
      {
        name = "b";
        credential = "nats.creds";
        units = [
          "y"
          "x.timer"
        ];
      }
    ];
    expected = [ ];
  };

  "format 2: store-v2 (store in format 2) gives every answer store (format 1) gives" = {
    expr = answers manifestV2;
    expected = answers manifest;
  };

  # Guards the test above: the answers compared are not empty ones.
  "format 2: the compared answers give core1 its five services and nats1 one" = {
    expr = {
      inherit (answers manifestV2) hostNames;
      credsOf = map builtins.length (answers manifestV2).credsOf;
      refusals = builtins.length (builtins.filter (x: x != null) (answers manifestV2).checkUser);
    };
    expected = {
      hostNames = [
        "core1"
        "dev1"
        "media1"
        "nats1"
      ];
      # core1 dev1 media1 nats1 printer1
      credsOf = [
        5
        3
        3
        1
        0
      ];
      # 4 hosts x 13 names (12 users, printer-service), less the 12 creds
      # the hosts have; printer1 is left to checkHost.
      refusals = 4 * 13 - 12;
    };
  };

  "format 2: usersOf and credsOf follow the users' hosts, across accounts" = {
    expr = {
      web1 = map (u: "${u.account}/${u.name}") (h.usersOf small "web1");
      web2 = map (u: "${u.account}/${u.name}") (h.usersOf small "web2");
      idle = h.credsOf small "idle";
      api = h.userCreds small "api";
    };
    expected = {
      web1 = [
        "ops/monitor"
        "app/api"
      ];
      web2 = [
        "app/worker"
        "app/api"
      ];
      idle = [ ];
      api = "nsc/stores/small/accounts/app/users/api.creds.age";
    };
  };

  "format 2: a host no user lists is a host, and may have no creds at all" = {
    expr = {
      host = h.checkHost {
        manifest = small;
        hostName = "idle";
      };
      user = h.checkUser {
        manifest = small;
        hostName = "idle";
        name = "api";
        file = "${flakeStore}/nsc/stores/small/accounts/app/users/api.creds.age";
      };
      own = h.checkUser {
        manifest = small;
        hostName = "web1";
        name = "api";
        file = "${flakeStore}/nsc/stores/small/accounts/app/users/api.creds.age";
      };
    };
    expected = {
      host = null;
      user =
        "${opt}.users.api: ${flakeStore}/nsc/stores/small/accounts/app/users/api.creds.age is not "
        + "assigned to host \"idle\" in the store's manifest; host \"idle\" may have no creds at "
        + "all. To give it this service, add it to hosts[].services of \"idle\" in the clan-nats "
        + "config and run clan-nats generate again.";
      own = null;
    };
  };
}
