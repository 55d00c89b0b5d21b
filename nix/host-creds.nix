# Which NATS creds a host may have, from the manifest of a clan-nats store,
# and the checks behind services.clan-nats.credentials. builtins only.
#
# `manifest` is always what nix/store.nix's `manifest` returns: format 1's
# shape whatever the store's format (format 2 keeps the users in
# manifest.d/<account>.json and no host creds; store.nix puts both back).
# Paths are relative to the store DIR:
#   hosts    = [ { name; recipient; nats_server; creds = [ "nsc/stores/<OP>/accounts/<A>/users/<U>.creds.age" … ]; } … ]
#   accounts = [ { name; public_key; system; users = [ { name; creds; hosts; … } … ]; } … ]
let
  option = "services.clan-nats.credentials";

  hasSuffix =
    suffix: s:
    let
      ls = builtins.stringLength s;
      lx = builtins.stringLength suffix;
    in
    lx <= ls && builtins.substring (ls - lx) lx s == suffix;

  quoteList = xs: builtins.concatStringsSep ", " (map (x: "\"${x}\"") xs);
in
rec {
  inherit hasSuffix;

  hostNames = manifest: map (h: h.name) manifest.hosts;

  # The manifest entry of a host, or null.
  host =
    manifest: name:
    let
      found = builtins.filter (h: h.name == name) manifest.hosts;
    in
    if found == [ ] then null else builtins.head found;

  # Every user of every account, each with its account's name (and whether
  # that is the system account) added.
  users =
    manifest:
    builtins.concatMap (
      a:
      map (
        u:
        u
        // {
          account = a.name;
          system = a.system or false;
        }
      ) a.users
    ) manifest.accounts;

  # The user `name` of account `account`, or null.
  userIn =
    manifest: account: name:
    let
      found = builtins.filter (u: u.account == account && u.name == name) (users manifest);
    in
    if found == [ ] then null else builtins.head found;

  # The manifest entry of a user, or null. Service names are unique in a
  # store (clan-nats rejects duplicate person names), but the system
  # account's own user is also called "sys": a service of that name is
  # looked up by its account and name, never taken for the SYS admin's.
  user =
    manifest: name:
    let
      named = builtins.filter (u: u.name == name) (users manifest);
      services = builtins.filter (u: !u.system) named;
      found = if services != [ ] then services else named;
    in
    if found == [ ] then null else userIn manifest (builtins.head found).account name;

  # The creds files (relative to the store) a host may have: exactly those
  # of the services its config entry lists.
  credsOf = manifest: name: (host manifest name).creds or [ ];

  # The users whose creds a host may have.
  usersOf =
    manifest: name:
    let
      creds = credsOf manifest name;
    in
    builtins.filter (u: builtins.elem u.creds creds) (users manifest);

  # The creds file of a user, relative to the store, or null.
  userCreds = manifest: name: (user manifest name).creds or null;

  # Which of `creds` (relative paths) a file is: the file's path must end in
  # "/<rel>" (the store can be a flake path or a store path, so only the part
  # inside the store is compared). A guard against configuration mistakes;
  # the age recipients are what keeps other hosts' creds unreadable.
  matchCreds =
    creds: file:
    builtins.filter (rel: toString file == rel || hasSuffix "/${rel}" (toString file)) creds;

  # Why `hostName` is no host of the manifest, or null.
  checkHost =
    {
      manifest,
      hostName,
    }:
    if host manifest hostName != null then
      null
    else
      "${option}.hostName: \"${hostName}\" is not a host of the store's manifest.json "
      + "(hosts: ${quoteList (hostNames manifest)}). Set ${option}.hostName to the name this "
      + "machine has in the clan-nats config (hosts[].name), or add the host there and run "
      + "clan-nats generate again.";

  # Why ${option}.users.<name> may not be given to the host, or null.
  # `file` is the requested .age file (null: the user is not in the manifest
  # and no file was given).
  checkUser =
    {
      manifest,
      hostName,
      name,
      file,
    }:
    let
      allowed = map (u: u.name) (usersOf manifest hostName);
      allowedText =
        if allowed == [ ] then "no creds at all" else "only the creds of ${quoteList allowed}";
    in
    if host manifest hostName == null then
      null # reported once, by checkHost
    else if file == null then
      "${option}.users.${name}: the store has no user \"${name}\"; host \"${hostName}\" may have "
      + "${allowedText}. Use one of those names, or set ${option}.users.${name}.file."
    else if matchCreds (credsOf manifest hostName) file == [ ] then
      "${option}.users.${name}: ${toString file} is not assigned to host \"${hostName}\" in the "
      + "store's manifest; host \"${hostName}\" may have ${allowedText}. To give it this "
      + "service, add it to hosts[].services of \"${hostName}\" in the clan-nats config and run "
      + "clan-nats generate again."
    else
      null;

  # A user name is also a file name under the run directory.
  validName = name: builtins.match "[A-Za-z0-9][A-Za-z0-9._-]*" name != null;

  # systemd.services attribute name of a unit name ("foo" or "foo.service");
  # null for a unit of another type (LoadCredential= is a service setting).
  serviceName =
    unit:
    let
      base =
        if hasSuffix ".service" unit then
          builtins.substring 0 (builtins.stringLength unit - 8) unit
        else
          unit;
      otherTypes = "socket|timer|path|target|mount|slice|scope|device|swap|automount";
      otherType = builtins.match ".*[.](${otherTypes})" base;
    in
    if base == "" || otherType != null then null else base;

  # The LoadCredential= entry of one user.
  loadCredential =
    {
      credential,
      path,
    }:
    "${credential}:${path}";

  # Every (service, credential) pair that more than one user asks for:
  # systemd would keep only one. `entries` = [ { name; credential; units; } … ].
  duplicateCredentials =
    entries:
    let
      pairs = builtins.concatMap (
        e:
        map (unit: {
          service = serviceName unit;
          inherit (e) credential name;
        }) e.units
      ) entries;
      keyOf = p: "${toString p.service} ${p.credential}";
      grouped = builtins.foldl' (
        acc: p: acc // { ${keyOf p} = (acc.${keyOf p} or [ ]) ++ [ p ]; }
      ) { } (builtins.filter (p: p.service != null) pairs);
    in
    map (
      k:
      let
        ps = grouped.${k};
        first = builtins.head ps;
      in
      "${option}.users: ${quoteList (map (p: p.name) ps)} all give credential "
      + "\"${first.credential}\" to ${first.service}.service; set a distinct "
      + "${option}.users.<name>.credential for each."
    ) (builtins.filter (k: builtins.length grouped.${k} > 1) (builtins.attrNames grouped));
}
