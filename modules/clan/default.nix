# clan service (clan.lol): NATS in operator mode for a clan, from a clan-nats
# store. Role `server` runs nats-server with every account of the store;
# role `client` gives a machine the creds the store assigns to it, decrypted
# with the machine's clan age key. The store itself (operator and account
# seeds included, encrypted to the owner only) stays outside clan vars: see
# README.md.
{ ... }:
let
  defaults = import ../../nix/defaults.nix;
  fleet = import ../../nix/fleet.nix;

  storeOption =
    lib:
    lib.mkOption {
      type = lib.types.path;
      example = lib.literalExpression "./nats-store";
      description = "The store directory written by `clan-nats generate`, in your clan's flake.";
    };

  # The client URLs of the instance's server machines (clan-core passes
  # `roles.<role>.machines.<name>.settings` to perInstance). A server of a
  # fleet store listens on its store's client_port.
  serverUrls =
    { roles, domain }:
    let
      servers = (roles.server or { }).machines or { };
      url =
        name:
        let
          s = servers.${name}.settings or { };
          tls = (s.tls or { }).certFile or null;
          host = if domain == null then name else "${name}.${domain}";
          store = s.store or null;
          fleetHost =
            if store != null && fleet.isFleet store && fleet.hasHost store name then
              fleet.host {
                inherit store;
                hostName = name;
              }
            else
              null;
          port = if fleetHost != null then fleetHost.clientPort else s.port or defaults.port;
          secure = if fleetHost != null then fleetHost.tls != null else tls != null;
        in
        "${if secure then "tls" else "nats"}://${host}:${toString port}";
    in
    map url (builtins.attrNames servers);
in
{
  _class = "clan.service";
  manifest.name = "clan-nats";
  manifest.description = "NATS decentralized auth (operator mode) from an age-encrypted, nsc-compatible store";
  manifest.categories = [ "Network" ];
  manifest.readme = builtins.readFile ./README.md;

  roles.server = {
    description = "Runs nats-server in operator mode with the accounts of the store";

    interface =
      { lib, ... }:
      {
        options = {
          store = storeOption lib;
          resolver = lib.mkOption {
            type = lib.types.enum [
              "memory"
              "full"
            ];
            default = defaults.resolver;
            description = "See services.clan-nats.server.resolver.";
          };
          jetstream = lib.mkOption {
            type = lib.types.bool;
            default = false;
            description = "Enable JetStream (accounts need JetStream limits in their JWT).";
          };
          port = lib.mkOption {
            type = lib.types.port;
            default = defaults.port;
            description = "Client port.";
          };
          openFirewall = lib.mkOption {
            type = lib.types.bool;
            default = false;
            description = ''
              Open the client port on every interface. Prefer
              `firewallInterfaces` (the clan mesh): closed by default.
            '';
          };
          firewallInterfaces = lib.mkOption {
            type = lib.types.listOf lib.types.str;
            default = [ ];
            example = [ "zt+" ];
            description = ''
              Interfaces on which the client port is opened, for the clients
              of this instance: your clan mesh (ZeroTier, WireGuard, ...).
              Empty: the port stays closed.
            '';
          };
          tls = lib.mkOption {
            type = lib.types.submodule {
              options = {
                certFile = lib.mkOption {
                  type = lib.types.nullOr lib.types.str;
                  default = null;
                  description = "See services.clan-nats.server.tls.certFile (a path on the machine, outside the Nix store).";
                };
                keyFile = lib.mkOption {
                  type = lib.types.nullOr lib.types.str;
                  default = null;
                  description = "See services.clan-nats.server.tls.keyFile.";
                };
                caFile = lib.mkOption {
                  type = lib.types.nullOr lib.types.str;
                  default = null;
                  description = "See services.clan-nats.server.tls.caFile.";
                };
              };
            };
            default = { };
            description = "TLS for the client listener; clients then connect with tls://.";
          };
          settings = lib.mkOption {
            type = lib.types.attrsOf lib.types.anything;
            default = { };
            description = "Extra services.nats.settings, merged last (public: it goes to the Nix store).";
          };
        };
      };

    perInstance =
      {
        settings,
        machine,
        instanceName,
        ...
      }:
      {
        nixosModule =
          { config, lib, ... }:
          let
            isFleet = fleet.isFleet settings.store;
            problem = fleet.check {
              inherit (settings) store;
              hostName = machine.name;
            };
          in
          {
            # The server role on a machine the fleet store has no server/<machine>/ for.
            assertions = [
              {
                assertion = problem == null;
                message = "clan-nats (instance ${instanceName}, role server, machine ${machine.name}): ${toString problem}";
              }
            ];
            imports = [
              ../server.nix
              ./instances.nix
            ];
            services.clan-nats.clanInstances.server = [ instanceName ];
            services.clan-nats.server = {
              enable = true;
              # Each server is named after its machine (nixpkgs' default, "nats", is the same everywhere).
              serverName = lib.mkDefault machine.name;
              # A fleet store: the machine runs server/<machine>/ (its routes
              # to the other servers come from the store; no extra settings).
              hostName = lib.mkDefault machine.name;
              inherit (settings)
                store
                resolver
                jetstream
                openFirewall
                firewallInterfaces
                tls
                settings
                ;
            }
            # A fleet store sets each server's client port (client_port of its host).
            // (if isFleet then { } else { inherit (settings) port; });
            # JetStream streams and the full resolver's pushed JWTs are state:
            # clan's backups include the server's data directory.
            # A fleet store always uses the full resolver (its jwt dir is state).
            clan.core.state.clan-nats = lib.mkIf (settings.jetstream || settings.resolver == "full" || isFleet) {
              folders = [ config.services.nats.dataDir ];
            };
          };
      };
  };

  roles.client = {
    description = "Decrypts the NATS creds the store assigns to this machine and hands them to its services";

    interface =
      { lib, ... }:
      {
        options = {
          store = storeOption lib;
          domain = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "clan";
            description = ''
              Appended to the server machines' names in their URLs
              (`nats://<machine>.<domain>:<port>`); null: the bare machine name.
            '';
          };
          services = lib.mkOption {
            type = lib.types.attrsOf (lib.types.listOf lib.types.str);
            default = { };
            example = {
              person-service = [ "person-service" ];
            };
            description = ''
              NATS users (services of the clan-nats config) whose creds this
              machine gets, each mapped to the systemd services that read
              them as `$CREDENTIALS_DIRECTORY/nats.creds`.
            '';
          };
        };
      };

    perInstance =
      {
        settings,
        machine,
        instanceName,
        roles,
        ...
      }:
      {
        nixosModule =
          { lib, ... }:
          {
            imports = [
              ../credentials.nix
              ./instances.nix
            ];
            services.clan-nats.clanInstances.client = [ instanceName ];
            services.clan-nats.credentials = {
              inherit (settings) store;
              # The servers of this instance, by machine name (on the clan
              # mesh), each with its own port and scheme; NATS_URL of every
              # configured unit.
              servers = lib.mkDefault (serverUrls {
                inherit roles;
                inherit (settings) domain;
              });
              # The clan machine name is its name in the clan-nats config.
              hostName = lib.mkDefault machine.name;
              # identityPaths keeps its default: on a clan machine that is the
              # clan machine key (sops: /var/lib/sops-nix/key.txt, age:
              # /etc/secret-vars/key.txt), then the ssh host key.
              users = builtins.mapAttrs (_name: units: { inherit units; }) settings.services;
            };
          };
      };
  };
}
