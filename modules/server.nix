# services.clan-nats.server: nixpkgs' services.nats in operator mode, from the
# public part of a clan-nats store (server/server.json). The server needs no
# secret in operator mode, so everything here may live in the Nix store.
{
  config,
  lib,
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
  serverJson = helpers.store.serverJson cfg.store;
  problems = helpers.serverSettings.check serverJson;

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
      default = defaults.port;
      description = "Client port of the NATS server (sets `services.nats.port`).";
    };

    serverName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = ''
        The server's name (`server_name`, sets `services.nats.serverName`,
        whose nixpkgs default `"nats"` would give every server the same name).
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
      validateConfig = lib.mkDefault (cfg.resolver != "full");
      settings = lib.mkMerge [
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
      ];
    };

    environment.etc.${defaults.etcConfig}.source = checkedConfig;
    system.checks = [ checkedConfig ];

    systemd.services.nats = {
      # Account changes (a new JWT in resolver_preload) reload the server:
      # the unit file does not change, only its reload trigger.
      reloadTriggers = [ checkedConfig ];
      restartTriggers = [ (builtins.toJSON nonReloadable) ];
      serviceConfig = {
        ExecStart = lib.mkForce "${lib.getExe' nats.package "nats-server"} -c /etc/${defaults.etcConfig}";
        LoadCredential = lib.optionals tlsEnabled (
          [
            "tls.crt:${cfg.tls.certFile}"
            "tls.key:${cfg.tls.keyFile}"
          ]
          ++ lib.optional (cfg.tls.caFile != null) "tls.ca:${cfg.tls.caFile}"
        );
      };
    };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.port ];
    networking.firewall.interfaces = lib.genAttrs cfg.firewallInterfaces (_: {
      allowedTCPPorts = [ cfg.port ];
    });
  };
}
