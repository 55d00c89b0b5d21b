# clan service (clan.lol): NATS in operator mode for a clan, from a clan-nats
# store. Role `server` runs nats-server with every account of the store;
# role `client` gives a machine the creds the store assigns to it, decrypted
# with the machine's clan age key. The store itself (operator and account
# seeds included, encrypted to the owner only) stays outside clan vars: see
# README.md.
{ ... }:
let
  defaults = import ../../nix/defaults.nix;

  storeOption =
    lib:
    lib.mkOption {
      type = lib.types.path;
      example = lib.literalExpression "./nats-store";
      description = "The store directory written by `clan-nats generate`, in your clan's flake.";
    };
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
            default = true;
            description = "Open the client port, so the clients of this instance can connect.";
          };
          settings = lib.mkOption {
            type = lib.types.attrsOf lib.types.anything;
            default = { };
            description = "Extra services.nats.settings, merged last (public: it goes to the Nix store).";
          };
        };
      };

    perInstance =
      { settings, ... }:
      {
        nixosModule = {
          imports = [ ../server.nix ];
          services.clan-nats.server = {
            enable = true;
            inherit (settings)
              store
              resolver
              jetstream
              port
              openFirewall
              settings
              ;
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
        ...
      }:
      {
        nixosModule =
          { lib, ... }:
          {
            imports = [ ../credentials.nix ];
            services.clan-nats.credentials = {
              inherit (settings) store;
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
