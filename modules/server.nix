# services.clan-nats.server: nixpkgs' services.nats in operator mode, from the
# public part of a clan-nats store. A one-server store (server/server.json):
# the server needs no secret, so everything here may live in the Nix store.
# A fleet store (server/<hostName>/): the host's nats-server.conf runs
# verbatim, and the route credential (server/cluster.env.age) is decrypted at
# boot into a root-only ramfs and handed to nats.service as EnvironmentFile=.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    types
    ;
  helpers = import ../nix;
  inherit (helpers) defaults;

  cfg = config.services.clan-nats.server;
  nats = config.services.nats;
  inherit (helpers) fleet;

  # A fleet store (per-host directories) or a one-server store (server/server.json).
  isFleet = fleet.isFleet cfg.store;
  fleetProblem = if isFleet then fleet.check { inherit (cfg) store hostName; } else null;
  fleetHost = if isFleet && fleetProblem == null then fleet.host { inherit (cfg) store hostName; } else null;
  fleetMode = fleetHost != null;

  serverJson = helpers.store.serverJson cfg.store;
  problems = if isFleet then [ ] else helpers.serverSettings.check serverJson;

  clan = defaults.clanSettings { inherit options config; };
  sopsAgeKeyFile = if options ? sops.age.keyFile then config.sops.age.keyFile else null;
  clusterUnit = "${defaults.clusterUnit}.service";

  absoluteOutsideStore = types.addCheck types.str (
    s: lib.hasPrefix "/" s && !lib.hasPrefix "${builtins.storeDir}/" s
  );
  tlsEnabled = cfg.tls.certFile != null;
  # systemd credentials of nats.service: the TLS key stays outside the store,
  # readable by root only; the unit reads it from its credentials directory.
  credDir = "/run/credentials/nats.service";

  # The configuration nats.service runs, as nixpkgs writes it (JSON of
  # services.nats.settings), checked at build time by nix/validate-config.sh
  # (the resolver directory is moved into the build's temporary directory for
  # the check). It is installed at a stable path, /etc/${defaults.etcConfig}, which
  # ExecStart names: an account change changes the file, not the unit, so a
  # switch reloads the server (SIGHUP) instead of restarting it.
  unchecked = (pkgs.formats.json { }).generate "nats.conf" nats.settings;
  checkedConfig =
    pkgs.runCommand "clan-nats-nats.conf"
      {
        nativeBuildInputs = [
          nats.package
          pkgs.jq
        ];
      }
      ''
        bash ${../nix/validate-config.sh} ${unchecked} $out
      '';
  # What nats-server cannot change on SIGHUP: a change here restarts it.
  nonReloadable = helpers.serverSettings.nonReloadable nats.settings;

  # Fleet: the host's conf verbatim, then what this module adds (JetStream,
  # `settings`: later keys win in the nats-server config format, which reads
  # JSON values). Public data only: the credential is only named in it
  # ($CLAN_NATS_CLUSTER_PASSWORD, $CLAN_NATS_CLUSTER_ROUTES).
  fleetExtra = {
    jetstream = {
      enabled = cfg.jetstream;
    }
    # As nixpkgs' services.nats: the streams go to <dataDir>/jetstream.
    // lib.optionalAttrs cfg.jetstream { store_dir = nats.dataDir; };
  }
  // cfg.settings;
  # Top-level keys of the store's conf that `settings` would replace whole.
  fleetReserved = builtins.filter (k: cfg.settings ? ${k}) [
    "server_name"
    "port"
    "listen"
    "operator"
    "system_account"
    "resolver"
    "resolver_preload"
    "cluster"
    "tls"
  ];
  fleetConf = pkgs.writeText "nats.conf" (
    builtins.readFile fleetHost.confFile
    + "\n# Added by services.clan-nats.server (jetstream, settings):\n"
    + lib.concatStrings (lib.mapAttrsToList (k: v: "${k}: ${builtins.toJSON v}\n") fleetExtra)
  );
  checkedFleetConfig =
    pkgs.runCommand "clan-nats-nats.conf" { nativeBuildInputs = [ nats.package ]; }
      ''
        bash ${../nix/validate-fleet-config.sh} ${fleetConf} $out
      '';
  fleetNonReloadable =
    fleetHost.nonReloadable
    // helpers.serverSettings.nonReloadable fleetExtra
    // {
      # A new route credential is read at start only (EnvironmentFile=).
      credential = "${fleetHost.credentialFile}";
    };

  clusterDecryptScript = pkgs.writeShellApplication {
    name = "clan-nats-decrypt-cluster-env";
    runtimeInputs = [
      cfg.agePackage
      pkgs.coreutils
      pkgs.util-linux
    ];
    text = helpers.decryptScript {
      runDir = defaults.clusterRunDir;
      inherit (cfg) identityPaths;
      suffix = defaults.clusterEnvSuffix;
      identityOption = "services.clan-nats.server.identityPaths";
      creds = [
        {
          name = defaults.clusterEnvName;
          file = fleetHost.credentialFile;
        }
      ];
    };
  };

  runConfig = if fleetMode then checkedFleetConfig else checkedConfig;
in
{
  _class = "nixos";

  options.services.clan-nats.server = {
    enable = mkEnableOption "a NATS server in operator mode for the accounts of a clan-nats store";

    store = mkOption {
      type = types.path;
      example = literalExpression "./nats-store";
      description = ''
        The store directory written by `clan-nats generate` (usually committed
        to your flake). Only its public `server/server.json` is read: the
        operator JWT, the system account and every account JWT.

        Give a path inside your flake (`./nats-store`), not an absolute path
        string: pure evaluation cannot read files outside the Nix store.
      '';
    };

    resolver = mkOption {
      type = types.enum [
        "memory"
        "full"
      ];
      default = defaults.resolver;
      description = ''
        How the server resolves account JWTs.

        - `"memory"` (default): every account JWT of the store is preloaded
          from the configuration (`resolver = MEMORY`). Fully declarative: the
          deployed configuration is the whole truth, and a change to any
          account (a new service, a revocation) restarts `nats.service` on
          switch.
        - `"full"`: a writable JWT directory,
          `''${services.nats.dataDir}/jwt` (`allow_delete = false`,
          `interval = "2m"`, `timeout = "1.9s"`). Only the system account is
          preloaded; the other accounts are pushed to the running server
          (for example `nsc push -A` on a directory written by
          `clan-nats export-nsc`) and updates need no restart.
          Trade-off: a pushed JWT is state, not configuration. It outlives
          the configuration, survives a rollback, stays after its account is
          removed from the store, and the server keeps serving it until a
          newer JWT is pushed.
      '';
    };

    jetstream = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Enable JetStream (sets `services.nats.jetstream`). In operator mode an
        account can use JetStream only if its JWT carries JetStream limits:
        set `nats_limits.jetstream` on the unit that defines the account in
        the clan-nats config, then generate again.
      '';
    };

    port = mkOption {
      type = types.port;
      default = if fleetMode then fleetHost.clientPort else defaults.port;
      defaultText = literalExpression "4222, or the host's client_port in a fleet store";
      description = ''
        Client port of the NATS server (sets `services.nats.port`). With a
        fleet store it is the store's (`client_port` of the host) and must not
        be set to anything else: the conf is used as generated.
      '';
    };

    serverName = mkOption {
      type = types.str;
      default = if fleetMode then fleetHost.serverName else config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = ''
        The server's name (`server_name`, sets `services.nats.serverName`,
        whose nixpkgs default `"nats"` would give every server the same name).
        With a fleet store the name is the store's (`server/<hostName>/`).
      '';
    };

    hostName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = ''
        This server's host name in the clan-nats config. With a fleet store
        (several `nats_server` hosts) the server runs
        `server/<hostName>/nats-server.conf`, with the cluster routes to the
        other servers; it is an evaluation error when the store has no
        `server/<hostName>/`. Unused with a one-server store. The clan
        service sets it to the machine name.
      '';
    };

    identityPaths = mkOption {
      type = types.listOf absoluteOutsideStore;
      default = defaults.identityPaths {
        inherit clan sopsAgeKeyFile;
        sshHostKeys = config.services.openssh.hostKeys;
      };
      defaultText = lib.literalMD "as `services.clan-nats.credentials.identityPaths`";
      description = ''
        Fleet stores only: age identities of this machine that decrypt the
        route credential (`server/cluster.env.age`, encrypted to every server
        host), tried in order. Same default as
        `services.clan-nats.credentials.identityPaths`.
      '';
    };

    identityUnits = mkOption {
      type = types.listOf types.str;
      default = defaults.identityUnits {
        inherit clan;
        inherit (cfg) identityPaths;
      };
      defaultText = lib.literalMD "as `services.clan-nats.credentials.identityUnits`";
      description = "Fleet stores only: units that put an identity in place (the decrypt unit runs after them).";
    };

    agePackage = mkOption {
      type = types.package;
      default = pkgs.age;
      defaultText = literalExpression "pkgs.age";
      description = "Fleet stores only: the `age` that decrypts the route credential.";
    };

    environmentFile = mkOption {
      type = types.nullOr types.str;
      readOnly = true;
      default = if fleetMode then defaults.clusterEnvFile else null;
      defaultText = literalExpression ''"${defaults.clusterEnvFile}" with a fleet store, else null'';
      description = ''
        Where the decrypted route credential is (root-only ramfs, mode 0400),
        nats.service's `EnvironmentFile=`. null with a one-server store.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open `port` on every interface. Prefer `firewallInterfaces`: the
        client port should be reachable from your mesh, not the internet.
      '';
    };

    firewallInterfaces = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "wg0" ];
      description = ''
        Interfaces (for example the clan mesh) on which `port` is opened.
        Empty (the default): no interface, the port stays closed.
      '';
    };

    tls = {
      certFile = mkOption {
        type = types.nullOr absoluteOutsideStore;
        default = null;
        example = "/var/lib/acme/nats.example.org/cert.pem";
        description = ''
          Certificate (chain) of the client listener. Setting it turns on TLS
          for clients (`tls` block). A path on the machine, outside the Nix
          store; handed to nats.service with LoadCredential=.
        '';
      };
      keyFile = mkOption {
        type = types.nullOr absoluteOutsideStore;
        default = null;
        example = "/var/lib/acme/nats.example.org/key.pem";
        description = ''
          Private key of `certFile`. A path on the machine outside the Nix
          store (root-only is fine: systemd hands it to the unit as a credential).
        '';
      };
      caFile = mkOption {
        type = types.nullOr absoluteOutsideStore;
        default = null;
        description = "CA bundle to verify client certificates with (`ca_file`); null: none.";
      };
    };

    settings = mkOption {
      type = (pkgs.formats.json { }).type;
      default = { };
      example = literalExpression ''
        {
          max_payload = 8388608;
          http_port = 8222;
        }
      '';
      description = ''
        Extra `services.nats.settings`, merged last (recursively: your values
        win). Everything in here ends up in the world-readable Nix store: put
        no secret here. Set the port with `port`, not here.
      '';
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = fleetProblem == null;
        message = "services.clan-nats.server.store: ${toString cfg.store}: ${toString fleetProblem}";
      }
      {
        assertion = !fleetMode || (cfg.port == fleetHost.clientPort && cfg.serverName == fleetHost.serverName);
        message = "services.clan-nats.server: with a fleet store the port and the server name are the store's (server/${cfg.hostName}/server.json: ${toString (fleetHost.clientPort or "")}, \"${fleetHost.serverName or ""}\"): change them in the clan-nats config.";
      }
      {
        assertion = !fleetMode || fleetReserved == [ ];
        message = "services.clan-nats.server.settings: with a fleet store these come from server/${cfg.hostName}/nats-server.conf and may not be set here: ${lib.concatStringsSep ", " fleetReserved}.";
      }
      {
        assertion = !fleetMode || !tlsEnabled;
        message = "services.clan-nats.server.tls: with a fleet store TLS comes from the store (nats_cluster.tls in the clan-nats config), not from this option.";
      }
      {
        assertion = !fleetMode || cfg.identityPaths != [ ];
        message = "services.clan-nats.server.identityPaths must name this machine's age or ssh-ed25519 key (it decrypts server/cluster.env.age).";
      }
      {
        assertion = problems == [ ];
        message = "services.clan-nats.server.store: server/server.json of ${toString cfg.store}: ${lib.concatStringsSep "; " problems}";
      }
      {
        assertion = (cfg.tls.certFile == null) == (cfg.tls.keyFile == null);
        message = "services.clan-nats.server.tls: set both certFile and keyFile, or neither.";
      }
      {
        assertion = cfg.tls.caFile == null || tlsEnabled;
        message = "services.clan-nats.server.tls.caFile needs certFile and keyFile.";
      }
    ];


    services.nats = {
      enable = true;
      inherit (cfg) port jetstream serverName;
      # nixpkgs' check runs `nats-server -t` on its own config file, which
      # creates the full resolver's directory and fails in the sandbox. That
      # file is not what runs (ExecStart below names /etc/${defaults.etcConfig}):
      # the check of that one (checkedConfig) covers both resolvers.
      # With a fleet store nixpkgs' file is not used at all (and server/server.json does not exist).
      validateConfig = lib.mkDefault (cfg.resolver != "full" && !isFleet);
      settings = lib.mkIf (!isFleet) (lib.mkMerge [
        (helpers.serverSettings.settings {
          inherit serverJson;
          inherit (cfg) resolver;
          inherit (config.services.nats) dataDir;
          extra = cfg.settings;
        })
        # nixpkgs writes `jetstream = { }` when its option is off, and
        # nats-server reads an empty block as "on": say it explicitly.
        { jetstream.enabled = lib.mkDefault cfg.jetstream; }
        (mkIf tlsEnabled {
          tls = {
            cert_file = "${credDir}/tls.crt";
            key_file = "${credDir}/tls.key";
          }
          // lib.optionalAttrs (cfg.tls.caFile != null) {
            ca_file = "${credDir}/tls.ca";
            verify = true;
          };
        })
      ]);
    };

    environment.etc.${defaults.etcConfig}.source = runConfig;
    system.checks = [ runConfig ];

    systemd.services.nats = {
      # Account changes (a new JWT in resolver_preload) reload the server:
      # the unit file does not change, only its reload trigger.
      # Fleet: the same split, over the host's conf (server/<host>/): a new
      # preload reloads, a new name, listen address, cluster or credential restarts.
      reloadTriggers = [ runConfig ];
      restartTriggers = [ (builtins.toJSON (if fleetMode then fleetNonReloadable else nonReloadable)) ];
      requires = lib.optional fleetMode clusterUnit;
      after = lib.optional fleetMode clusterUnit;
      serviceConfig = {
        ExecStart = lib.mkForce "${lib.getExe' nats.package "nats-server"} -c /etc/${defaults.etcConfig}";
        # The full resolver's `dir` of a fleet conf is relative (jwt).
        WorkingDirectory = lib.mkIf fleetMode nats.dataDir;
        EnvironmentFile = lib.mkIf fleetMode defaults.clusterEnvFile;
        LoadCredential = lib.optionals tlsEnabled (
          [
            "tls.crt:${cfg.tls.certFile}"
            "tls.key:${cfg.tls.keyFile}"
          ]
          ++ lib.optional (cfg.tls.caFile != null) "tls.ca:${cfg.tls.caFile}"
        );
      };
    };

    # Fleet: decrypt the route credential before nats.service starts.
    systemd.services.${defaults.clusterUnit} = mkIf fleetMode {
      description = "Decrypt the NATS cluster route credential of this server (clan-nats)";
      wantedBy = [ "multi-user.target" ];
      before = [ "nats.service" ];
      after = cfg.identityUnits;
      wants = cfg.identityUnits;
      unitConfig.RequiresMountsFor = cfg.identityPaths;
      # The .age file's store path changes with its content: decrypt again.
      restartTriggers = [ "${fleetHost.credentialFile}" ];
      stopIfChanged = false;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = lib.getExe clusterDecryptScript;
        UMask = "0077";
      };
    };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.port ];
    # The route port is never opened on every interface: only on firewallInterfaces.
    networking.firewall.interfaces = lib.genAttrs cfg.firewallInterfaces (_: {
      allowedTCPPorts = [ cfg.port ] ++ lib.optional fleetMode fleetHost.clusterPort;
    });
  };
}
