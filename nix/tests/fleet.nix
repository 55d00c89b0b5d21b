# Tests of the fleet part of services.clan-nats.server (nix/fleet.nix,
# modules/server.nix, the clan service's server role) over the committed
# TEST-ONLY fleet store nix/tests/fixtures/fleet/store (three servers: nats1,
# core1 on cluster port 7222, media1 on client port 4333; dev1 is a client).
# `secrets`: plaintext values that must appear nowhere in what the evaluation
# produces; nix/tests/run.sh passes the route password and the route list,
# decrypted from server/cluster.env.age with the TEST-ONLY host key of core1.
{
  secrets ? [ ],
}:
let
  fleet = import ../fleet.nix;
  store = ./fixtures/fleet/store;
  single = ./fixtures/store;
  evalHost =
    hostName: overrides:
    import ./stubs/fleet-module.nix {
      inherit
        store
        hostName
        overrides
        ;
    };
  at = host: (evalHost host { }).config;
  nats = host: (at host).systemd.services.nats;
  hosts = [
    "nats1"
    "core1"
    "media1"
  ];
  perHost =
    f:
    builtins.listToAttrs (
      map (h: {
        name = h;
        value = f h;
      }) hosts
    );
  failing = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  hasInfix = needle: hay: builtins.replaceStrings [ needle ] [ "" ] hay != hay;
  anyInfix = needles: hay: builtins.any (n: hasInfix n hay) needles;

  # Everything the module evaluation produces, for each host, as text.
  produced = builtins.toJSON (map (h: (evalHost h { firewallInterfaces = [ "wg0" ]; }).config) hosts);
  confText = host: (at host).environment.etc."clan-nats/nats.conf".source;

  single1 =
    (import ./stubs/fleet-module.nix {
      store = single;
      hostName = "core1";
    }).config;

  # The clan service's server role, with the stand-in lib of clan-service.nix.
  stubLib = {
    mkOption = o: o;
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkDefault = content: {
      _type = "override";
      priority = 1000;
      inherit content;
    };
  };
  service = import ../../modules/clan { };
  clanSettings = {
    inherit store;
    resolver = "memory";
    jetstream = false;
    port = 4222;
    openFirewall = false;
    firewallInterfaces = [ ];
    tls = { };
    settings = { };
  };
  roles.server.machines = perHost (_: { settings = clanSettings; });
  clanServer =
    machine:
    (service.roles.server.perInstance {
      settings = clanSettings;
      inherit roles;
      instanceName = "nats";
      machine = {
        name = machine;
        roles = [ "server" ];
      };
    }).nixosModule
      {
        config.services.nats.dataDir = "/var/lib/nats";
        lib = stubLib;
      };
  clanClient =
    (service.roles.client.perInstance {
      settings = {
        inherit store;
        domain = null;
        services = { };
      };
      inherit roles;
      instanceName = "nats";
      machine = {
        name = "dev1";
        roles = [ "client" ];
      };
    }).nixosModule
      { lib = stubLib; };
in
import ./harness.nix {
  "fleet: the fixture is a fleet store, the one-server fixture is not" = {
    expr = [
      (fleet.isFleet store)
      (fleet.isFleet single)
    ];
    expected = [
      true
      false
    ];
  };

  "fleet: its servers are the hosts with a per-host directory" = {
    expr = fleet.servers store;
    expected = [
      "core1"
      "media1"
      "nats1"
    ];
  };

  "fleet: each host's server name, client and cluster port come from its server.json" = {
    expr = perHost (h: {
      inherit (fleet.host { inherit store; hostName = h; }) serverName clientPort clusterPort;
      module = {
        inherit ((at h).services.nats) serverName port;
      };
    });
    expected = {
      nats1 = {
        serverName = "nats1";
        clientPort = 4222;
        clusterPort = 6222;
        module = {
          serverName = "nats1";
          port = 4222;
        };
      };
      core1 = {
        serverName = "core1";
        clientPort = 4222;
        clusterPort = 7222;
        module = {
          serverName = "core1";
          port = 4222;
        };
      };
      media1 = {
        serverName = "media1";
        clientPort = 4333;
        clusterPort = 6222;
        module = {
          serverName = "media1";
          port = 4333;
        };
      };
    };
  };

  "fleet: each host routes to the two other servers, with no credential in the URL" = {
    expr = perHost (h: (fleet.host { inherit store; hostName = h; }).routes);
    expected = {
      nats1 = [
        "nats-route://10.0.0.2:7222"
        "nats-route://10.0.0.3:6222"
      ];
      core1 = [
        "nats-route://10.0.0.3:6222"
        "nats-route://nats1.fleet.test:6222"
      ];
      media1 = [
        "nats-route://10.0.0.2:7222"
        "nats-route://nats1.fleet.test:6222"
      ];
    };
  };

  "module: nats.service runs the host's conf verbatim, from the stable /etc path" = {
    expr = perHost (
      h:
      let
        # The conf given to the check (stub-nats.conf-text:<text>), as installed.
        script = (confText h).script;
        text = builtins.elemAt (builtins.split "stub-nats.conf-text:" script) 2;
        conf = builtins.readFile (store + "/server/${h}/nats-server.conf");
      in
      {
        verbatim = builtins.substring 0 (builtins.stringLength conf) text == conf;
        names = hasInfix "server_name: \"${h}\"" text;
        envOnly = hasInfix "password: $CLAN_NATS_CLUSTER_PASSWORD" text && hasInfix "routes: $CLAN_NATS_CLUSTER_ROUTES" text;
        execStart = (nats h).serviceConfig.ExecStart;
      }
    );
    expected = perHost (_: {
      verbatim = true;
      names = true;
      envOnly = true;
      execStart = "/nix/store/stub-nats-server/bin/nats-server -c /etc/clan-nats/nats.conf";
    });
  };

  "module: the route credential is an EnvironmentFile, decrypted by a unit nats.service requires" = {
    expr = perHost (h: {
      inherit (nats h) requires after;
      inherit ((nats h).serviceConfig) EnvironmentFile WorkingDirectory;
      decrypt = {
        inherit ((at h).systemd.services.clan-nats-cluster-env) before wantedBy;
        inherit ((at h).systemd.services.clan-nats-cluster-env.serviceConfig) Type UMask;
      };
      option = (evalHost h { }).cfg.environmentFile;
    });
    expected = perHost (_: {
      requires = [ "clan-nats-cluster-env.service" ];
      after = [ "clan-nats-cluster-env.service" ];
      EnvironmentFile = "/run/clan-nats-cluster/cluster.env";
      WorkingDirectory = "/var/lib/nats";
      decrypt = {
        before = [ "nats.service" ];
        wantedBy = [ "multi-user.target" ];
        Type = "oneshot";
        UMask = "0077";
      };
      option = "/run/clan-nats-cluster/cluster.env";
    });
  };

  "module: the decrypt script writes cluster.env (0400) to its own ramfs with the host key" = {
    expr =
      let
        text = (at "core1").systemd.services.clan-nats-cluster-env.serviceConfig.ExecStart;
        script = import ../decrypt-script.nix {
          runDir = "/run/clan-nats-cluster";
          identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
          suffix = ".env";
          creds = [
            {
              name = "cluster";
              file = "/x/server/cluster.env.age";
            }
          ];
        };
      in
      {
        exe = text;
        target = hasInfix ''local target="$dir/$name.env"'' script;
        mount = hasInfix "mount -t ramfs" script;
        keeps = hasInfix "'cluster.env') ;;" script;
      };
    expected = {
      exe = "/nix/store/stub-clan-nats-decrypt-cluster-env/bin/clan-nats-decrypt-cluster-env";
      target = true;
      mount = true;
      keeps = true;
    };
  };

  "module: the build-time check validates the fleet conf (dummy credential, resolver dir in the build dir)" = {
    expr = hasInfix "validate-fleet-config.sh" (at "core1").environment.etc."clan-nats/nats.conf".source.script;
    expected = true;
  };

  "module: a preload change reloads; name, listen, cluster and credential changes restart" = {
    expr =
      let
        n = nats "core1";
        restart = builtins.fromJSON (builtins.unsafeDiscardStringContext (builtins.head n.restartTriggers));
      in
      {
        reload = n.reloadTriggers == [ (confText "core1") ];
        restartKeys = builtins.attrNames restart;
        noPreload = !(hasInfix "resolver_preload" (builtins.head n.restartTriggers));
        inherit (restart) cluster;
      };
    expected = {
      reload = true;
      restartKeys = [
        "client_port"
        "cluster"
        "credential"
        "jetstream"
        "operator"
        "resolver"
        "resolver_dir"
        "server_name"
        "system_account"
        "tls"
      ];
      noPreload = true;
      cluster = {
        name = "fleet-test";
        listen = "10.0.0.2:7222";
        user = "route";
      };
    };
  };

  "module: the cluster port opens on firewallInterfaces only, never with openFirewall" = {
    expr = {
      interfaces = perHost (h: (evalHost h { firewallInterfaces = [ "wg0" ]; }).config.networking.firewall.interfaces);
      open = (evalHost "core1" { openFirewall = true; }).config.networking.firewall;
    };
    expected = {
      interfaces = {
        nats1.wg0.allowedTCPPorts = [
          4222
          6222
        ];
        core1.wg0.allowedTCPPorts = [
          4222
          7222
        ];
        media1.wg0.allowedTCPPorts = [
          4333
          6222
        ];
      };
      open = {
        allowedTCPPorts = [ 4222 ];
        interfaces = { };
      };
    };
  };

  "module: a host without server/<host>/ in a fleet store is an evaluation error" = {
    expr = failing (at "dev1");
    expected = [
      "services.clan-nats.server.store: ${toString store}: server/dev1/ is missing: \"dev1\" is not a nats server of this fleet store (its servers: core1, media1, nats1); set nats_server = true and an address for it in the clan-nats config and generate again, or set hostName"
    ];
  };

  "module: a fleet host passes every assertion" = {
    expr = perHost (h: failing (at h));
    expected = perHost (_: [ ]);
  };

  "module: a port or server name other than the store's is an error" = {
    expr = builtins.length (failing (evalHost "core1" { port = 4000; }).config);
    expected = 1;
  };

  "module: settings may add keys but not replace the store's cluster or resolver" = {
    expr = {
      bad = failing (evalHost "core1" { settings.cluster = { }; }).config;
      ok = failing (evalHost "core1" { settings.http_port = 8222; }).config;
      appended = hasInfix "http_port: 8222" (evalHost "core1" { settings.http_port = 8222; }).config.environment.etc."clan-nats/nats.conf".source.script;
    };
    expected = {
      bad = [
        "services.clan-nats.server.settings: with a fleet store these come from server/core1/nats-server.conf and may not be set here: cluster."
      ];
      ok = [ ];
      appended = true;
    };
  };

  "module: a one-server store keeps working as before (no cluster unit, no EnvironmentFile)" = {
    expr = {
      unit = single1.systemd.services.clan-nats-cluster-env;
      env = single1.systemd.services.nats.serviceConfig.EnvironmentFile;
      wd = single1.systemd.services.nats.serviceConfig.WorkingDirectory;
      requires = single1.systemd.services.nats.requires;
      check = hasInfix "validate-config.sh" single1.environment.etc."clan-nats/nats.conf".source.script;
      failing = failing single1;
    };
    expected = {
      unit = null;
      env = null;
      wd = null;
      requires = [ ];
      check = true;
      failing = [ ];
    };
  };

  "no secret: no seed, creds or route credential in anything the evaluation produces" = {
    expr = {
      seedHeader = anyInfix [
        "NKEY SEED"
        "BEGIN USER"
        "CLAN_NATS_CLUSTER_PASSWORD='"
        "CLAN_NATS_CLUSTER_ROUTES='"
        "://route:"
      ] produced;
      secrets = builtins.filter (s: hasInfix s produced) secrets;
      # The only files of the store the evaluation references: the host's
      # conf (public) and the .age ciphertext.
      ageOnly = hasInfix "cluster.env.age" produced;
    };
    expected = {
      seedHeader = false;
      secrets = [ ];
      ageOnly = true;
    };
  };

  "clan: the server role picks server/<machine>/ and sets no port (the store's)" = {
    expr = perHost (
      h:
      let
        m = clanServer h;
      in
      {
        hostName = m.services.clan-nats.server.hostName.content;
        hasPort = m.services.clan-nats.server ? port;
        state = m.clan.core.state.clan-nats.condition;
        failing = map (a: a.message) (builtins.filter (a: !a.assertion) m.assertions);
      }
    );
    expected = perHost (h: {
      hostName = h;
      hasPort = false;
      state = true;
      failing = [ ];
    });
  };

  "clan: the server role on a machine the fleet store has no directory for is an error" = {
    expr = map (a: a.message) (builtins.filter (a: !a.assertion) (clanServer "dev1").assertions);
    expected = [
      "clan-nats (instance nats, role server, machine dev1): server/dev1/ is missing: \"dev1\" is not a nats server of this fleet store (its servers: core1, media1, nats1); set nats_server = true and an address for it in the clan-nats config and generate again, or set hostName"
    ];
  };

  "clan: clients get every server's URL with the store's client port" = {
    expr = clanClient.services.clan-nats.credentials.servers.content;
    expected = [
      "nats://core1:4222"
      "nats://media1:4333"
      "nats://nats1:4222"
    ];
  };
}
