# Development flake of clan-nats: checks that need clan-core, kept out of the
# main flake (whose only input is nixpkgs). Run from a checkout:
#
#   cd dev && nix flake check -L
#
# The first run locks clan-core (this flake has no committed lock file; the
# parent flake is taken from the checkout, `path:..`).
#
# checks.x86_64-linux:
#   - clan-inventory: a three-machine clan (server, client, observer) that uses
#     the clan-nats service exactly as the README shows, evaluated through
#     clan-core; asserts the server name, the scoped firewall, the client's
#     creds, NATS_URL and clan machine key, and that every machine's system
#     evaluates (all assertions forced);
#   - vm: the main flake's VM test (nix/checks/vm.nix), against nixpkgs of clan-core.
{
  description = "clan-nats development checks: a clan inventory using the clan-nats service, and the VM test";

  inputs = {
    clan-core.url = "https://git.clan.lol/clan/clan-core/archive/main.tar.gz";
    nixpkgs.follows = "clan-core/nixpkgs";
    clan-nats = {
      url = "path:..";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      clan-core,
      nixpkgs,
      clan-nats,
      ...
    }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      inherit (nixpkgs) lib;
      # The committed TEST ONLY store of the VM test: hosts "server" and
      # "client", recipients are the TEST ONLY keys of tests/fixtures/insecure.
      store = "${clan-nats}/nix/tests/fixtures/vm/store-v1";

      machine = {
        nixpkgs.hostPlatform = system;
        boot.loader.grub.enable = false;
        fileSystems."/" = {
          device = "none";
          fsType = "tmpfs";
        };
        system.stateVersion = "26.05";
      };

      clan = clan-core.lib.clan {
        inherit self;
        meta.name = "clan-nats-dev";
        specialArgs = { };
        inventory.machines = {
          server = { };
          client = { };
          observer = { };
        };
        inventory.instances.nats = {
          module = {
            input = "clan-nats";
            name = "clan-nats";
          };
          roles.server.machines.server.settings = {
            inherit store;
            firewallInterfaces = [ "eth1" ];
          };
          roles.client.machines.client.settings = {
            inherit store;
            services.person-service = [ "person-service" ];
          };
          # A client with no service: it gets no creds, only the prune unit.
          roles.client.machines.observer.settings = {
            inherit store;
          };
        };
        machines = {
          server = machine;
          observer = machine;
          client = {
            imports = [ machine ];
            systemd.services.person-service = {
              wantedBy = [ "multi-user.target" ];
              serviceConfig.DynamicUser = true;
              script = ''exec sleep infinity'';
            };
          };
        };
      };

      configs = lib.mapAttrs (_: m: m.config) clan.config.nixosConfigurations;
      inherit (configs) server client observer;

      checks = {
        "server: named after its machine" = {
          actual = server.services.nats.settings.server_name;
          expected = "server";
        };
        "server: client port open on the mesh interface only" = {
          actual = {
            mesh = server.networking.firewall.interfaces.eth1.allowedTCPPorts;
            everywhere = lib.elem 4222 server.networking.firewall.allowedTCPPorts;
          };
          expected = {
            mesh = [ 4222 ];
            everywhere = false;
          };
        };
        "server: runs the stable /etc config, reloaded on account changes" = {
          actual = lib.hasSuffix "-c /etc/clan-nats/nats.conf" server.systemd.services.nats.serviceConfig.ExecStart;
          expected = true;
        };
        "client: LoadCredential and NATS_URL of the instance's server" = {
          actual = {
            inherit (client.systemd.services.person-service.serviceConfig) LoadCredential;
            inherit (client.systemd.services.person-service.environment) NATS_URL;
          };
          expected = {
            LoadCredential = [ "nats.creds:/run/clan-nats/person-service.creds" ];
            NATS_URL = "nats://server:4222";
          };
        };
        "client: the clan machine key (sops, clan's default store) comes first" = {
          actual = lib.head client.services.clan-nats.credentials.identityPaths;
          expected = "/var/lib/sops-nix/key.txt";
        };
        "observer: no creds, no server, only the prune unit" = {
          actual = {
            nats = observer.services.nats.enable;
            users = observer.services.clan-nats.credentials.users;
            condition = observer.systemd.services.clan-nats-credentials.unitConfig.ConditionPathExists;
          };
          expected = {
            nats = false;
            users = { };
            condition = "/run/clan-nats";
          };
        };
      };
      failed = lib.filterAttrs (_: c: c.actual != c.expected) checks;
      show = lib.generators.toPretty { };
      explain = name: c: "- ${name}\n  expected: ${show c.expected}\n  actual:   ${show c.actual}\n";
      # Every machine's whole system: forces all assertions and warnings.
      toplevels = lib.mapAttrsToList (
        _: m: m.config.system.build.toplevel.drvPath
      ) clan.config.nixosConfigurations;
    in
    {
      inherit (clan.config) nixosConfigurations clanInternals;
      clan = clan.config;

      checks.${system} = {
        clan-inventory =
          if failed != { } then
            throw "clan-nats clan-inventory check failed:\n${lib.concatStrings (lib.mapAttrsToList explain failed)}"
          else
            builtins.deepSeq toplevels (
              pkgs.runCommand "clan-nats-clan-inventory" { } ''
                ${lib.concatMapStrings (n: "echo ${lib.escapeShellArg "ok ${n}"}\n") (lib.attrNames checks)}
                echo "systems evaluated: ${toString (lib.length toplevels)}"
                touch $out
              ''
            );
        vm = import "${clan-nats}/nix/checks/vm.nix" {
          inherit pkgs;
          inherit (clan-nats) nixosModules;
          clan-nats = clan-nats.packages.${system}.default;
        };
      };
    };
}
