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
  serverJson = helpers.store.serverJson cfg.store;
  problems = helpers.serverSettings.check serverJson;
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

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open `port` in the firewall, for clients on other machines.";
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
    ];

    services.nats = {
      enable = true;
      inherit (cfg) port jetstream;
      # validateConfig stays at its default (true): the configuration holds
      # only JWTs and public keys, so nats-server can check it at build time.
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
      ];
    };

    networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall [ cfg.port ];
  };
}
