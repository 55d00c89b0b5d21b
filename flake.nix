{
  description = "Declarative NATS decentralized auth for clan/NixOS fleets: an age-encrypted, nsc-compatible operator store generated from an organization config";

  inputs.nixpkgs.url = "https://channels.nixos.org/nixos-26.05/nixexprs.tar.xz";

  outputs =
    {
      self,
      nixpkgs,
    }:
    let
      linux = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      darwin = [
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      eachSystem =
        systems: f:
        nixpkgs.lib.genAttrs systems (
          system:
          f {
            inherit system;
            pkgs = nixpkgs.legacyPackages.${system};
          }
        );
    in
    {
      # Builtins-only helpers (server settings, host creds, defaults).
      lib = import ./nix;

      packages = eachSystem (linux ++ darwin) (
        {
          pkgs,
          system,
        }:
        {
          clan-nats = pkgs.callPackage ./nix/package.nix { };
          default = self.packages.${system}.clan-nats;
        }
      );

      apps = eachSystem (linux ++ darwin) (
        {
          pkgs,
          system,
        }:
        let
          clan-nats = self.packages.${system}.default;
          generate = pkgs.writeShellApplication {
            name = "clan-nats-generate";
            runtimeInputs = [ clan-nats ];
            # `clan:<machine>` host recipients are looked up in the clan
            # directory: by default the flake root this runs in (the nearest
            # directory upwards with a flake.nix); --clan-dir overrides it.
            text = ''
              if [ -z "''${CLAN_NATS_CLAN_DIR:-}" ]; then
                d=$PWD
                while [ "$d" != / ] && [ ! -e "$d/flake.nix" ]; do d=$(dirname "$d"); done
                if [ -e "$d/flake.nix" ]; then export CLAN_NATS_CLAN_DIR=$d; fi
              fi
              exec clan-nats generate "$@"
            '';
          };
        in
        {
          generate = {
            type = "app";
            program = nixpkgs.lib.getExe generate;
            meta.description = "Generate or reconcile a clan-nats store: --config FILE --out DIR --identity KEYFILE";
          };
          default = {
            type = "app";
            program = nixpkgs.lib.getExe clan-nats;
            meta.description = "The clan-nats CLI (generate, verify, export-nsc)";
          };
        }
      );

      devShells = eachSystem (linux ++ darwin) (
        { pkgs, ... }:
        {
          default = pkgs.mkShell {
            packages = [
              pkgs.cargo
              pkgs.rustc
              pkgs.rustfmt
              pkgs.clippy
              pkgs.nats-server
              pkgs.natscli
              pkgs.nsc
              pkgs.age
            ];
          };
        }
      );

      formatter = eachSystem (linux ++ darwin) ({ pkgs, ... }: pkgs.nixfmt-tree);

      nixosModules = {
        server = ./modules/server.nix;
        credentials = ./modules/credentials.nix;
        default = ./modules/default.nix;
      };

      # clan service (clan-core: `inventory.instances.<i>.module = { input = "clan-nats"; name = "clan-nats"; }`).
      clan.modules.clan-nats = ./modules/clan;

      checks = eachSystem linux (
        {
          pkgs,
          system,
        }:
        {
          package = self.packages.${system}.default;
          format = import ./nix/checks/format.nix { inherit pkgs; };
          nix-lib = import ./nix/checks/nix-lib.nix { inherit pkgs; };
          nixos-eval = import ./nix/checks/nixos-eval.nix {
            inherit nixpkgs pkgs system;
            inherit (self) nixosModules;
          };
        }
        // nixpkgs.lib.optionalAttrs (system == "x86_64-linux") {
          vm = import ./nix/checks/vm.nix {
            inherit pkgs;
            inherit (self) nixosModules;
            clan-nats = self.packages.${system}.default;
          };
        }
      );
    };
}
