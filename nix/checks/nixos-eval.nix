# checks.nixos-eval: evaluate NixOS configurations that use the modules (with
# the committed fixture store, nix/tests/fixtures/store) and assert on their
# config. Evaluation only: nothing is built, so the fixture needs no .age
# files. Every assertion is checked at evaluation time; the derivation only
# prints what passed.
{
  nixpkgs,
  pkgs,
  system,
  nixosModules,
}:
let
  inherit (nixpkgs) lib;
  helpers = import ../.;
  fixture = ../tests/fixtures/store;
  serverJson = helpers.store.serverJson fixture;
  run = "/run/clan-nats";

  base = {
    nixpkgs.hostPlatform = system;
    boot.loader.grub.enable = false;
    fileSystems."/" = {
      device = "none";
      fsType = "tmpfs";
    };
    system.stateVersion = "26.05";
  };
  eval =
    module:
    (lib.nixosSystem {
      modules = [
        nixosModules.default
        base
        module
      ];
    }).config;

  # A DynamicUser service that reads its creds from $CREDENTIALS_DIRECTORY.
  personService = {
    systemd.services.person-service = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.DynamicUser = true;
      script = ''exec nats --creds "$CREDENTIALS_DIRECTORY/nats.creds" sub 'thecowboyai.org.person.>' '';
    };
  };

  # Stand-ins for clan-core, declared as clan-core declares them:
  # `options.clan.core.vars` is ONE submodule option (nixosModules/clanCore/vars/
  # default.nix), and each secret-store backend (vars/secret/sops, vars/secret/age.nix)
  # declares the same option again with its own sub-options, which the module
  # system merges into one submodule. So `options.clan.core.vars` has no
  # attribute `settings`: only the evaluated config has.
  clanVarsOption =
    subOptions:
    { lib, ... }:
    {
      options.clan.core.vars = lib.mkOption {
        type = lib.types.submodule { options = subOptions lib; };
        default = { };
      };
    };
  clanCore = clanVarsOption (lib: {
    settings.secretStore = lib.mkOption {
      type = lib.types.enum [
        "sops"
        "password-store"
        "age"
        "custom"
      ];
      default = "sops";
    };
  });
  clanSopsBackend = clanVarsOption (lib: {
    sops.secretUploadDirectory = lib.mkOption {
      type = lib.types.path;
      default = "/var/lib/sops-nix";
    };
  });
  clanAgeBackend = clanVarsOption (lib: {
    age.secretLocation = lib.mkOption {
      type = lib.types.path;
      default = "/etc/secret-vars";
    };
  });
  clanSops = {
    imports = [
      clanCore
      clanSopsBackend
      clanAgeBackend
    ];
    clan.core.vars.settings.secretStore = "sops";
  };
  clanAge = {
    imports = [
      clanCore
      clanSopsBackend
      clanAgeBackend
    ];
    clan.core.vars.settings.secretStore = "age";
  };
  # core1 gets person-service (the manifest gives it to core1 and nats1).
  clanCreds = extra: {
    imports = [ extra ];
    networking.hostName = "core1";
    systemd.services.person-service = {
      wantedBy = [ "multi-user.target" ];
      script = "true";
    };
    services.clan-nats.credentials = {
      store = fixture;
      users.person-service.units = [ "person-service" ];
    };
  };

  # nats1 runs the server and person-service (the manifest gives it those creds).
  nats1 = eval {
    imports = [ personService ];
    networking.hostName = "nats1";
    services.clan-nats.server = {
      enable = true;
      store = fixture;
    };
    services.clan-nats.credentials = {
      store = fixture;
      users.person-service.units = [ "person-service.service" ];
    };
  };
  full = eval {
    networking.hostName = "nats1";
    services.clan-nats.server = {
      enable = true;
      store = fixture;
      resolver = "full";
      jetstream = true;
      openFirewall = true;
      firewallInterfaces = [ "wg0" ];
      settings.max_payload = 2097152;
    };
  };
  tlsServer = eval {
    networking.hostName = "nats1";
    services.clan-nats.server = {
      enable = true;
      store = fixture;
      tls = {
        certFile = "/var/lib/acme/nats/cert.pem";
        keyFile = "/var/lib/acme/nats/key.pem";
      };
    };
  };
  # core1 asks for audio-service, which the manifest gives to media1 only.
  foreign = eval {
    networking.hostName = "core1";
    services.clan-nats.credentials = {
      store = fixture;
      users.audio-service.units = [ ];
    };
  };
  # nats1 and core1's request for audio-service again, from the same store
  # in manifest format 2 (nix/tests/fixtures/store-v2: manifest.json without
  # users or host creds, manifest.d/<account>.json): the modules read it
  # through nix/store.nix, so only the store's path may differ.
  fixtureV2 = ../tests/fixtures/store-v2;
  nats1V2 = eval {
    imports = [ personService ];
    networking.hostName = "nats1";
    services.clan-nats.server = {
      enable = true;
      store = fixtureV2;
    };
    services.clan-nats.credentials = {
      store = fixtureV2;
      users.person-service.units = [ "person-service.service" ];
    };
  };
  foreignV2 = eval {
    networking.hostName = "core1";
    services.clan-nats.credentials = {
      store = fixtureV2;
      users.audio-service.units = [ ];
    };
  };
  clanMachine = eval (clanCreds clanSops);
  clanAgeMachine = eval (clanCreds clanAge);
  # sshd as a clan service: the host key is a clan var, installed by the backend.
  clanVarKey = eval {
    imports = [ (clanCreds clanSops) ];
    services.clan-nats.credentials.identityPaths = [ "/run/secrets/vars/openssh/ssh.id_ed25519" ];
  };
  noClan = eval (clanCreds { });
  # What the credentials module writes into the evaluated config (not the
  # path values of `file`/restartTriggers: the fixture has no .age files to copy).
  credsConfigJson =
    c:
    let
      unit = u: {
        inherit (c.systemd.services.${u}) serviceConfig environment;
      };
    in
    builtins.toJSON {
      decrypt = unit "clan-nats-credentials";
      consumer = unit "person-service";
      activation = c.system.activationScripts.clan-nats-credentials.text;
      inherit (c.services.clan-nats.credentials) identityPaths identityUnits directory;
    };
  unused = eval { networking.hostName = "core1"; };

  # The TEST ONLY fleet store (nix/tests/fixtures/fleet): nats1, core1
  # (cluster port 7222) and media1 (client port 4333) are servers, dev1 is not.
  fleetStore = ../tests/fixtures/fleet/store;
  fleetServer =
    host:
    eval {
      networking.hostName = host;
      services.clan-nats.server = {
        enable = true;
        store = fleetStore;
        firewallInterfaces = [ "wg0" ];
      };
    };
  fleetCore1 = fleetServer "core1";
  fleetMedia1 = fleetServer "media1";
  fleetDev1 = fleetServer "dev1";
  fleetNats = c: c.systemd.services.nats;

  ours =
    config:
    map (a: a.message) (
      lib.filter (a: lib.hasPrefix "services.clan-nats" a.message && !a.assertion) config.assertions
    );
  natsSettings = nats1.services.nats.settings;
  person = nats1.systemd.services.person-service;
  decrypt = nats1.systemd.services.clan-nats-credentials;
  foreignMessages = ours foreign;
  activation = nats1.system.activationScripts.clan-nats-credentials;
  # toString: the fixture has no .age files, so they must not be copied.
  inherit (person) restartTriggers;
  audioOption = "services.clan-nats.credentials.users.audio-service";
  namesOptionAndHost = m: lib.hasInfix audioOption m && lib.hasInfix "\"core1\"" m;

  checks = {
    "server: the operator JWT of server.json" = {
      actual = natsSettings.operator;
      expected = serverJson.operator;
    };
    "server: the system account" = {
      actual = natsSettings.system_account;
      expected = serverJson.system_account;
    };
    "server: MEMORY resolver" = {
      actual = natsSettings.resolver;
      expected = "MEMORY";
    };
    "server: every account of server.json preloaded with its JWT" = {
      actual = natsSettings.resolver_preload;
      expected = serverJson.resolver_preload;
    };
    "server: the port reaches services.nats" = {
      actual = [
        nats1.services.nats.port
        natsSettings.port
      ];
      expected = [
        4222
        4222
      ];
    };
    "server: nixpkgs' validateConfig on for memory, off for full (it would mkdir /var/lib/nats/jwt)" = {
      actual = [
        nats1.services.nats.validateConfig
        full.services.nats.validateConfig
      ];
      expected = [
        true
        false
      ];
    };
    "server: our own check of the deployed file is part of the system, for both resolvers" = {
      actual = map (c: map (d: lib.hasInfix "clan-nats-nats.conf" (toString d)) c.system.checks) [
        nats1
        full
      ];
      expected = [
        [ true ]
        [ true ]
      ];
    };
    "server: ExecStart names the stable /etc path, installed from the checked file" = {
      actual = {
        exec = lib.hasSuffix " -c /etc/clan-nats/nats.conf" nats1.systemd.services.nats.serviceConfig.ExecStart;
        etc = lib.hasInfix "clan-nats-nats.conf" (toString nats1.environment.etc."clan-nats/nats.conf".source);
      };
      expected = {
        exec = true;
        etc = true;
      };
    };
    "server: an account change reloads (reloadTriggers), only non-reloadable settings restart" = {
      actual = {
        reload = map (t: lib.hasInfix "clan-nats-nats.conf" (toString t)) nats1.systemd.services.nats.reloadTriggers;
        # The restart trigger holds no account JWT of resolver_preload.
        restartHasPreload = lib.any (
          t: lib.any (jwt: lib.hasInfix jwt (toString t)) (lib.attrValues (lib.removeAttrs serverJson.resolver_preload [ serverJson.system_account ]))
        ) nats1.systemd.services.nats.restartTriggers;
        restartHasPort = lib.any (t: lib.hasInfix "\"port\":4222" (toString t)) nats1.systemd.services.nats.restartTriggers;
      };
      expected = {
        reload = [ true ];
        restartHasPreload = false;
        restartHasPort = true;
      };
    };
    "server: server_name is the machine name, not nixpkgs' \"nats\"" = {
      actual = natsSettings.server_name;
      expected = "nats1";
    };
    "server: firewallInterfaces opens the port on those interfaces only" = {
      actual = {
        mesh = full.networking.firewall.interfaces.wg0.allowedTCPPorts;
        closed = nats1.networking.firewall.interfaces;
      };
      expected = {
        mesh = [ 4222 ];
        closed = { };
      };
    };
    "server: client TLS from certificate paths, as systemd credentials" = {
      actual = {
        inherit (tlsServer.services.nats.settings) tls;
        creds = tlsServer.systemd.services.nats.serviceConfig.LoadCredential;
      };
      expected = {
        tls = {
          cert_file = "/run/credentials/nats.service/tls.crt";
          key_file = "/run/credentials/nats.service/tls.key";
        };
        creds = [
          "tls.crt:/var/lib/acme/nats/cert.pem"
          "tls.key:/var/lib/acme/nats/key.pem"
        ];
      };
    };
    "server: no nkey seed in the nats settings" = {
      actual = helpers.seeds.count (builtins.toJSON natsSettings);
      expected = 0;
    };
    "server: the firewall stays closed unless asked" = {
      actual = lib.elem 4222 nats1.networking.firewall.allowedTCPPorts;
      expected = false;
    };
    "full: JWT directory under dataDir, only the system account preloaded" = {
      actual = {
        inherit (full.services.nats.settings) resolver;
        preload = lib.attrNames full.services.nats.settings.resolver_preload;
      };
      expected = {
        resolver = {
          type = "full";
          dir = "${full.services.nats.dataDir}/jwt";
          allow_delete = false;
          interval = "2m";
          timeout = "1.9s";
        };
        preload = [ serverJson.system_account ];
      };
    };
    "full: jetstream, extra settings merged, firewall opened" = {
      actual = {
        inherit (full.services.nats) jetstream;
        inherit (full.services.nats.settings) max_payload;
        js = full.services.nats.settings.jetstream;
        open = lib.elem 4222 full.networking.firewall.allowedTCPPorts;
      };
      expected = {
        jetstream = true;
        max_payload = 2097152;
        js = {
          enabled = true;
          store_dir = full.services.nats.dataDir;
        };
        open = true;
      };
    };
    "server: JetStream is off unless asked (not an empty, enabling block)" = {
      actual = natsSettings.jetstream;
      expected = {
        enabled = false;
      };
    };
    "credentials: LoadCredential on the target unit" = {
      actual = person.serviceConfig.LoadCredential;
      expected = [ "nats.creds:${run}/person-service.creds" ];
    };
    "credentials: the unit wants and follows the decrypt service" = {
      actual = {
        wants = lib.elem "clan-nats-credentials.service" person.wants;
        after = lib.elem "clan-nats-credentials.service" person.after;
      };
      expected = {
        wants = true;
        after = true;
      };
    };
    "credentials: the unit restarts when its .age file changes" = {
      actual = map (f: lib.hasSuffix "/person-service.creds.age" (toString f)) restartTriggers;
      expected = [ true ];
    };
    "credentials: the decrypted creds are under /run/clan-nats, not in the Nix store" = {
      actual = map (path: lib.hasPrefix "${run}/" path && !lib.hasPrefix builtins.storeDir path) [
        (lib.last (lib.splitString ":" (lib.head person.serviceConfig.LoadCredential)))
        nats1.services.clan-nats.credentials.users.person-service.path
      ];
      expected = [
        true
        true
      ];
    };
    "credentials: a oneshot, at boot, before its consumers" = {
      actual = {
        inherit (decrypt.serviceConfig) Type RemainAfterExit UMask;
        wantedBy = decrypt.wantedBy;
        before = decrypt.before;
        stopIfChanged = decrypt.stopIfChanged;
      };
      expected = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
        wantedBy = [ "multi-user.target" ];
        before = [ "person-service.service" ];
        stopIfChanged = false;
      };
    };
    "credentials: decrypted again on every switch" = {
      actual = lib.hasInfix "clan-nats-credentials.service >> /run/nixos/activation-restart-list" (
        activation.text
      );
      expected = true;
    };
    "credentials: a valid configuration has no failed assertion" = {
      actual = ours nats1 ++ ours full;
      expected = [ ];
    };
    "credentials: another host's creds are an error naming the option and the host" = {
      actual = map namesOptionAndHost foreignMessages;
      expected = [ true ];
    };
    "format 2: the store split into manifest.d/ gives the same creds, preload and errors" = {
      actual = {
        load = nats1V2.systemd.services.person-service.serviceConfig.LoadCredential;
        file = toString nats1V2.services.clan-nats.credentials.users.person-service.file;
        preload = nats1V2.services.nats.settings.resolver_preload;
        failed = ours nats1V2;
        foreign = map (lib.replaceStrings [ "/fixtures/store-v2/" ] [ "/fixtures/store/" ]) (
          ours foreignV2
        );
      };
      expected = {
        load = person.serviceConfig.LoadCredential;
        file = "${toString fixtureV2}/nsc/stores/thecowboyai/accounts/core/users/person-service.creds.age";
        preload = natsSettings.resolver_preload;
        failed = [ ];
        foreign = foreignMessages;
      };
    };
    "credentials: identityPaths defaults to the ssh host key" = {
      actual = nats1.services.clan-nats.credentials.identityPaths;
      expected = [ "/etc/ssh/ssh_host_ed25519_key" ];
    };
    "credentials: clan sops backend (submodule option, as clan-core): the machine key first" = {
      actual = clanMachine.services.clan-nats.credentials.identityPaths;
      expected = [
        "/var/lib/sops-nix/key.txt"
        "/etc/ssh/ssh_host_ed25519_key"
      ];
    };
    "credentials: clan age backend: /etc/secret-vars/key.txt first" = {
      actual = clanAgeMachine.services.clan-nats.credentials.identityPaths;
      expected = [
        "/etc/secret-vars/key.txt"
        "/etc/ssh/ssh_host_ed25519_key"
      ];
    };
    "credentials: no clan: the ssh host key only" = {
      actual = noClan.services.clan-nats.credentials.identityPaths;
      expected = [ "/etc/ssh/ssh_host_ed25519_key" ];
    };
    "credentials: decrypt after the identity's installer, before the consumer (clan, age, none)" = {
      actual = map (c: {
        after = lib.filter (u: u != "network.target") c.systemd.services.clan-nats-credentials.after;
        inherit (c.systemd.services.clan-nats-credentials) before;
        consumerAfter = lib.elem "clan-nats-credentials.service" c.systemd.services.person-service.after;
      }) [
        clanVarKey
        clanAgeMachine
        noClan
      ];
      expected = [
        {
          after = [ "sops-install-secrets.service" ];
          before = [ "person-service.service" ];
          consumerAfter = true;
        }
        {
          after = [ ];
          before = [ "person-service.service" ];
          consumerAfter = true;
        }
        {
          after = [ ];
          before = [ "person-service.service" ];
          consumerAfter = true;
        }
      ];
    };
    "credentials: no seed and no creds in the evaluated config (clan sops, clan age, none)" = {
      actual = map (c: {
        seeds = helpers.seeds.count (credsConfigJson c);
        creds = lib.hasInfix "BEGIN NATS USER JWT" (credsConfigJson c);
      }) [
        clanMachine
        clanAgeMachine
        noClan
      ];
      expected = lib.genList (_: {
        seeds = 0;
        creds = false;
      }) 3;
    };
    "fleet: each server runs its server/<host>/ conf with the route credential as EnvironmentFile" = {
      actual = map (c: {
        inherit (c.services.nats) serverName port;
        inherit ((fleetNats c).serviceConfig) EnvironmentFile WorkingDirectory;
        requires = lib.elem "clan-nats-cluster-env.service" (fleetNats c).requires;
        after = lib.elem "clan-nats-cluster-env.service" (fleetNats c).after;
        ports = c.networking.firewall.interfaces.wg0.allowedTCPPorts;
        decryptBefore = lib.elem "nats.service" c.systemd.services.clan-nats-cluster-env.before;
        failed = ours c;
      }) [
        fleetCore1
        fleetMedia1
      ];
      expected = [
        {
          serverName = "core1";
          port = 4222;
          EnvironmentFile = "/run/clan-nats-cluster/cluster.env";
          WorkingDirectory = "/var/lib/nats";
          requires = true;
          after = true;
          ports = [
            4222
            7222
          ];
          decryptBefore = true;
          failed = [ ];
        }
        {
          serverName = "media1";
          port = 4333;
          EnvironmentFile = "/run/clan-nats-cluster/cluster.env";
          WorkingDirectory = "/var/lib/nats";
          requires = true;
          after = true;
          ports = [
            4333
            6222
          ];
          decryptBefore = true;
          failed = [ ];
        }
      ];
    };
    "fleet: the deployed conf is the store's, checked with dummy credentials" = {
      actual = {
        source = lib.hasInfix "clan-nats-nats.conf" (toString fleetCore1.environment.etc."clan-nats/nats.conf".source);
        reload = map toString (fleetNats fleetCore1).reloadTriggers == [
          (toString fleetCore1.environment.etc."clan-nats/nats.conf".source)
        ];
        noPreloadInRestart = !(lib.hasInfix "resolver_preload" (lib.concatMapStrings toString (fleetNats fleetCore1).restartTriggers));
      };
      expected = {
        source = true;
        reload = true;
        noPreloadInRestart = true;
      };
    };
    "fleet: a host the fleet store has no server/<host>/ for is an evaluation error" = {
      actual = lib.any (lib.hasInfix "server/dev1/ is missing") (ours fleetDev1);
      expected = true;
    };
    "unused modules: no server; only the prune unit, which runs only where creds were decrypted" = {
      actual = {
        nats = unused.services.nats.enable;
        condition = unused.systemd.services.clan-nats-credentials.unitConfig.ConditionPathExists;
        same = lib.hasSuffix "/clan-nats-decrypt-credentials" unused.systemd.services.clan-nats-credentials.serviceConfig.ExecStart;
      };
      expected = {
        nats = false;
        condition = "/run/clan-nats";
        same = true;
      };
    };
  };

  failed = lib.filterAttrs (_: c: c.actual != c.expected) checks;
  show = lib.generators.toPretty { };
  explain = name: c: "- ${name}\n  expected: ${show c.expected}\n  actual:   ${show c.actual}\n";
  failures = lib.concatStrings (lib.mapAttrsToList explain failed);
  names = lib.attrNames checks;
  echoOk = name: "echo ${lib.escapeShellArg "ok ${name}"}\n";
in
if failed != { } then
  throw "clan-nats nixos-eval check failed:\n${failures}"
else
  pkgs.runCommand "clan-nats-nixos-eval" { } ''
    ${lib.concatMapStrings echoOk names}
    echo "nixos-eval: ${toString (lib.length names)} passed, 0 failed"
    touch $out
  ''
