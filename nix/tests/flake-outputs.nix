# Tests of flake.nix and flake.lock that need no nixpkgs: the outputs are
# evaluated with a stand-in nixpkgs that fails if anything touches it, so
# only what is independent of nixpkgs (modules, clan service, lib) is checked.
let
  flake = import ../../flake.nix;
  offline = throw "nixpkgs is not available to nix/tests";
  outputs = flake.outputs {
    self = outputs;
    nixpkgs = {
      lib = offline;
      legacyPackages = offline;
    };
  };
  cargo = (builtins.fromTOML (builtins.readFile ../../Cargo.toml)).package;
  lock = builtins.fromJSON (builtins.readFile ../../flake.lock);
  baseNames = map (p: baseNameOf (toString p));
  url = "https://channels.nixos.org/nixos-26.05/nixexprs.tar.xz";
in
import ./harness.nix {
  "the flake's description is the crate's" = {
    expr = flake.description;
    expected = cargo.description;
  };

  "one input: nixpkgs from the NixOS 26.05 channel" = {
    expr = flake.inputs;
    expected = {
      nixpkgs.url = url;
    };
  };

  "flake.lock locks that input at the root" = {
    expr = {
      inherit (lock) version root;
      rootInputs = lock.nodes.root.inputs;
      inherit (lock.nodes.nixpkgs) original;
    };
    expected = {
      version = 7;
      root = "root";
      rootInputs.nixpkgs = "nixpkgs";
      original = {
        type = "tarball";
        inherit url;
      };
    };
  };

  "outputs" = {
    expr = builtins.attrNames outputs;
    expected = [
      "apps"
      "checks"
      "clan"
      "devShells"
      "formatter"
      "lib"
      "nixosModules"
      "packages"
    ];
  };

  "nixosModules: server, credentials, and default importing both" = {
    expr = {
      files = builtins.mapAttrs (_: p: baseNameOf (toString p)) outputs.nixosModules;
      defaultImports = baseNames (import outputs.nixosModules.default).imports;
      functions = map (n: builtins.isFunction (import outputs.nixosModules.${n})) [
        "server"
        "credentials"
      ];
    };
    expected = {
      files = {
        server = "server.nix";
        credentials = "credentials.nix";
        default = "default.nix";
      };
      defaultImports = [
        "server.nix"
        "credentials.nix"
      ];
      functions = [
        true
        true
      ];
    };
  };

  "clan.modules.clan-nats is the clan service" = {
    expr = {
      names = builtins.attrNames outputs.clan.modules;
      class = (import outputs.clan.modules.clan-nats { })._class;
    };
    expected = {
      names = [ "clan-nats" ];
      class = "clan.service";
    };
  };

  "lib: the builtins-only helpers" = {
    expr = builtins.attrNames outputs.lib;
    expected = [
      "decryptScript"
      "defaults"
      "fleet"
      "hostCreds"
      "seeds"
      "serverSettings"
      "store"
    ];
  };
}
