# The builtins-only helpers of clan-nats: every data-shaping step of the
# NixOS modules (modules/) and of the clan service (modules/clan/) lives here,
# as functions of explicit arguments, so nix/tests/ can check them with a bare
# `nix-instantiate --eval` (no nixpkgs, no NixOS evaluation).
#
# Exported by the flake as `lib`. Nothing in these files may use nixpkgs.
# (nix/package.nix and nix/checks/ are the flake's build recipes: they do.)
{
  defaults = import ./defaults.nix;
  store = import ./store.nix;
  serverSettings = import ./server-settings.nix;
  hostCreds = import ./host-creds.nix;
  decryptScript = import ./decrypt-script.nix;
  seeds = import ./seeds.nix;
  fleet = import ./fleet.nix;
}
