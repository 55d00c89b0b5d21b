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

  # The store's manifest, always in the shape of format 1: every account
  # entry has its `users`, every host entry its `creds`. Everything in nix/
  # and modules/ reads the manifest through this function, never
  # manifest.json itself (only tests read the file, to check this one), so
  # the split of format 2 is known here only.
  #
  # Format 1: manifest.json is the whole manifest, returned as it is.
  # Format 2: manifest.json keeps the operator, the accounts without their
  # users, and the hosts without their creds (one file of every user would
  # grow with the store); each account's users are in its own file,
  # `accounts[].manifest` (manifest.d/<account>.json), put back by `assemble`.
  manifest =
    store:
    let
      root = readJSON store "manifest.json";
    in
    if (root.format or 1) >= 2 then assemble store root else root;

  # A format-2 root manifest with its per-account files read back in, as
  # clan-nats itself loads it (Manifest::from_tree in src/manifest.rs):
  #   accounts[].users  the `users` of the account's file. The file must be
  #                     manifest.d/<account>.json, have the sha256 the root
  #                     gives it and name the account: a stale or foreign
  #                     file (a half-updated checkout, a copied file) would
  #                     otherwise hand a host creds the store did not give it;
  #   hosts[].creds     what format 1 wrote there: the creds of every user
  #                     whose `hosts` lists the host, in account order, then
  #                     user order ([ ] for a host no user lists);
  #   keys, secrets, files  the root's entries and those of every account's
  #                     file, in one list or set as in format 1 (keys sorted
  #                     by role, account, user, as clan-nats sorts them); only
  #                     when some file has them: the Nix helpers read none.
  # Everything else (format, the accounts' `manifest`, the digests) is kept.
  assemble =
    store: root:
    let
      fail = msg: throw "clan-nats: ${msg}; run clan-nats generate again.";
      show = builtins.toJSON;

      # The file of account entry `a`, checked as clan-nats checks it.
      read =
        a:
        let
          want = "manifest.d/${a.name}.json";
          rel = a.manifest or null;
          sha = "sha256:${builtins.hashFile "sha256" (file store rel)}";
          content = readJSON store rel;
        in
        if rel != want then
          fail "account \"${a.name}\" of manifest.json: its manifest is ${show rel}, not ${want}"
        else if sha != (a.manifest_sha256 or null) then
          fail (
            "${rel}: sha256 mismatch: manifest.json says ${show (a.manifest_sha256 or null)}, "
            + "the file is ${sha}"
          )
        else if (content.account or null) != a.name then
          fail "${rel}: holds account ${show (content.account or null)}, not \"${a.name}\""
        else
          content;
      parts = map (a: {
        entry = a;
        content = read a;
      }) root.accounts;
      files = [ root ] ++ map (p: p.content) parts;

      accounts = map (p: p.entry // { inherit (p.content) users; }) parts;
      users = builtins.concatMap (a: a.users) accounts;
      # One entry per time a user lists the host, as clan-nats derives it.
      credsOf =
        name:
        builtins.concatMap (
          u: map (_: u.creds) (builtins.filter (h: h == name) (u.hosts or [ ]))
        ) users;

      # `name` of the root and of every account file, combined; absent when
      # none has it.
      merged =
        name: empty: combine:
        let
          having = builtins.filter (f: f ? ${name}) files;
        in
        if having == [ ] then
          { }
        else
          { ${name} = builtins.foldl' combine empty (map (f: f.${name}) having); };
      keyOrder = k: [
        k.role
        (k.account or "")
        (k.user or "")
      ];
      sortKeys = builtins.sort (x: y: builtins.lessThan (keyOrder x) (keyOrder y));
    in
    root
    // {
      inherit accounts;
      hosts = map (h: h // { creds = credsOf h.name; }) root.hosts;
    }
    // builtins.mapAttrs (_: sortKeys) (merged "keys" [ ] (a: b: a ++ b))
    // merged "secrets" { } (a: b: a // b)
    // merged "files" { } (a: b: a // b);

  serverJson = store: readJSON store "server/server.json";
}
