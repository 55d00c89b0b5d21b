# The fleet part of services.clan-nats.server: a store written for several
# `nats_server` hosts has, per server, `server/<host>/nats-server.conf` (the
# configuration nats-server runs, used verbatim) and `server/<host>/server.json`
# (the same as data), and one route credential for all of them,
# `server/cluster.env.age`. A one-server store has `server/server.json` and no
# per-host directory. builtins only; everything returned here is public (the
# conf and server.json hold JWTs, public keys, addresses and the NAMES of the
# two environment variables that carry the route credential, never its value).
let
  defaults = import ./defaults.nix;
  st = import ./store.nix;

  exists = store: rel: builtins.pathExists (st.file store rel);
  portOf = listen: builtins.fromJSON (builtins.head (builtins.match ".*:([0-9]+)" listen));
in
rec {
  # A fleet store: per-host directories and no top-level server.json.
  isFleet = store: !(exists store "server/server.json") && exists store "server/cluster.env.age";

  # The hosts that have a per-host directory (sorted).
  servers =
    store:
    let
      entries = builtins.readDir (st.file store "server");
    in
    builtins.filter (n: entries.${n} == "directory" && exists store "server/${n}/server.json") (
      builtins.attrNames entries
    );

  hasHost = store: hostName: exists store "server/${hostName}/server.json";

  # What is wrong with running `hostName` from this fleet store (null: fine).
  check =
    { store, hostName }:
    if !(isFleet store) || hasHost store hostName then
      null
    else
      "server/${hostName}/ is missing: \"${hostName}\" is not a nats server of this fleet store"
      + " (its servers: ${builtins.concatStringsSep ", " (servers store)}); set nats_server = true"
      + " and an address for it in the clan-nats config and generate again, or set hostName";

  # Everything the module needs for one server of a fleet store.
  host =
    { store, hostName }:
    let
      dir = "server/${hostName}";
      json = st.readJSON store "${dir}/server.json";
      cluster = json.cluster;
    in
    if !(hasHost store hostName) then
      throw "clan-nats: ${check { inherit store hostName; }}"
    else
      {
        serverName = json.server_name;
        clientPort = if json.client_port or null == null then defaults.port else json.client_port;
        clusterPort = portOf cluster.listen;
        clusterName = cluster.name;
        routes = cluster.routes;
        # The per-host conf, verbatim (a path when the store is a path).
        confFile = st.file store "${dir}/nats-server.conf";
        # The encrypted route credential (public: age ciphertext).
        credentialFile = st.file store cluster.credential;
        envFile = defaults.clusterEnvFile;
        passwordEnv = cluster.password_env;
        routesEnv = cluster.routes_env;
        resolverDir = json.resolver_dir or defaults.fullResolver.subdir;
        tls = json.tls or null;
        # What nats-server cannot change on SIGHUP: a change restarts it.
        # resolver_preload (the accounts) is left out: a change there reloads.
        nonReloadable = {
          inherit (json)
            server_name
            client_port
            operator
            system_account
            resolver
            ;
          resolver_dir = json.resolver_dir or null;
          tls = json.tls or null;
          cluster = {
            inherit (cluster) name listen user;
          };
        };
      };

  # Dummy values of the two environment variables for the build-time check
  # (nix/validate-fleet-config.sh): never the real credential.
  dummyEnv = {
    password = "clan-nats-validate-dummy";
    routes = ''["nats-route://route:clan-nats-validate-dummy@127.0.0.1:${toString defaults.clusterPort}"]'';
  };
}
