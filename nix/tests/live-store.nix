# Structural tests of a store's public files, so the helpers keep matching
# what `clan-nats generate` writes. By default they run on the committed
# fixture; nix/tests/run.sh also runs them on a freshly generated store:
#   nix-instantiate --eval --strict --json nix/tests/live-store.nix --arg store /path/to/DIR
{
  store ? ./fixtures/store,
}:
let
  st = import ../store.nix;
  s = import ../server-settings.nix;
  h = import ../host-creds.nix;
  seeds = import ../seeds.nix;

  serverJson = st.serverJson store;
  # As the modules read it (nix/store.nix: format 1's shape), and as written.
  manifest = st.manifest store;
  raw = st.readJSON store "manifest.json";
  sort = builtins.sort builtins.lessThan;
  system = builtins.filter (a: a.system) manifest.accounts;
  op = manifest.operator.name;
  hostUsers = host: sort (map (u: u.name) (h.usersOf manifest host.name));
  users = h.users manifest;
  claimedBy = host: sort (map (u: u.name) (builtins.filter (u: builtins.elem host.name u.hosts) users));
  accountKeys = sort (map (a: a.public_key) manifest.accounts);
  systemKeys = [
    serverJson.system_account
    manifest.operator.system_account
  ];
  isTheSystemAccount = a: builtins.all (k: k == a.public_key) systemKeys;
  credsPath = u: "nsc/stores/${op}/accounts/${u.account}/users/${u.name}.creds.age";
in
import ./harness.nix {
  "server.json passes the helper's check" = {
    expr = s.check serverJson;
    expected = [ ];
  };

  "manifest: the fields the modules read are there" = {
    expr = {
      top = builtins.all (n: manifest ? ${n}) [
        "operator"
        "accounts"
        "hosts"
      ];
      hosts = builtins.all (x: x ? name && x ? creds) manifest.hosts;
      users = builtins.all (u: u ? name && u ? creds && u ? hosts) users;
    };
    expected = {
      top = true;
      hosts = true;
      users = true;
    };
  };

  # Format 1 inline; format 2 split, every account's users in its own file
  # (which nix/store.nix has checked against its sha256 by now).
  "manifest: format 1 whole, or format 2 with the users in manifest.d/<account>.json" = {
    expr =
      if raw.format == 1 then
        builtins.all (a: a ? users) raw.accounts && builtins.all (h: h ? creds) raw.hosts
      else
        raw.format == 2
        && builtins.all (a: !(a ? users)) raw.accounts
        && builtins.all (a: a.manifest == "manifest.d/${a.name}.json") raw.accounts
        && builtins.all (h: !(h ? creds)) raw.hosts
        && map (a: a.name) manifest.accounts == map (a: a.name) raw.accounts;
    expected = true;
  };

  "preloaded accounts = the manifest's accounts" = {
    expr = builtins.attrNames serverJson.resolver_preload == accountKeys;
    expected = true;
  };

  "one system account, the one server.json names" = {
    expr = map isTheSystemAccount system;
    expected = [ true ];
  };

  "a host's creds are those of the users that list the host" = {
    expr = builtins.all (host: hostUsers host == claimedBy host) manifest.hosts;
    expected = true;
  };

  "creds live at nsc/stores/<operator>/accounts/<account>/users/<user>.creds.age" = {
    expr = builtins.all (u: u.creds == credsPath u) users;
    expected = true;
  };

  "the system account's users go to no host" = {
    expr = builtins.concatMap (a: builtins.concatMap (u: u.hosts) a.users) system;
    expected = [ ];
  };

  "no seed in the public files" = {
    expr = seeds.count (builtins.toJSON serverJson) + seeds.count (builtins.toJSON manifest);
    expected = 0;
  };
}
