# Reading the public files of a clan-nats store (the DIR written by
# `clan-nats generate`). builtins only.
#
# `store` may be a path literal (`./nats-store` in the user's flake), a string
# with context (`"${drv}"`) or a derivation (the VM test generates its store
# at build time). A path stays a path, so nothing is copied to the Nix store
# just to read one file; anything else is interpolated, which keeps its
# context (and makes reading it an import-from-derivation).
rec {
  # The store's file at `rel` (relative to DIR, as manifest.json writes paths).
  file = store: rel: if builtins.isPath store then store + "/${rel}" else "${store}/${rel}";

  # A store's JSON file, parsed.
  readJSON = store: rel: builtins.fromJSON (builtins.readFile (file store rel));

  # The two files the modules read. Both hold public data only.
  manifest = store: readJSON store "manifest.json";
  serverJson = store: readJSON store "server/server.json";
}
