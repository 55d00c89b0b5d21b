# services.nats.settings for operator mode, from the public server.json of a
# clan-nats store:
#   { "operator": "<operator JWT>", "system_account": "A…",
#     "resolver": "MEMORY", "resolver_preload": { "A…": "<account JWT>", … } }
# builtins only. Everything it returns is public (JWTs and public keys), so it
# may go into the world-readable nats.conf in the Nix store.
let
  defaults = import ./defaults.nix;

  isAccountKey = k: builtins.isString k && builtins.match "A[A-Z2-7]{55}" k != null;
  # A compact JWS: three non-empty dot-separated parts, a JSON header ("eyJ" is
  # base64url of '{"'). Shape only (no regex over the whole token, which can be
  # long); nats-server checks the signatures (services.nats.validateConfig).
  isJwt =
    v:
    let
      parts = builtins.filter builtins.isString (builtins.split "\\." v);
    in
    builtins.isString v
    && builtins.substring 0 3 v == "eyJ"
    && builtins.length parts == 3
    && builtins.all (p: p != "") parts;
in
rec {
  # What is wrong with a server.json value, as a list of messages (empty: fine).
  check =
    serverJson:
    let
      has = n: builtins.isAttrs serverJson && serverJson ? ${n};
      preload = serverJson.resolver_preload;
      badKeys = builtins.filter (k: !isAccountKey k) (builtins.attrNames preload);
      badJwts = builtins.filter (k: !isJwt preload.${k}) (builtins.attrNames preload);
      noOperator = "\"operator\" must be the operator JWT";
      sysQuoted = "\"${serverJson.system_account}\"";
    in
    if !builtins.isAttrs serverJson then
      [ "server.json is not a JSON object" ]
    else
      builtins.concatLists [
        (if has "operator" && isJwt serverJson.operator then [ ] else [ noOperator ])
        (
          if has "system_account" && isAccountKey serverJson.system_account then
            [ ]
          else
            [ "\"system_account\" must be an account public key (A…)" ]
        )
        (
          if !(has "resolver_preload" && builtins.isAttrs preload) then
            [ "\"resolver_preload\" must map account public keys to account JWTs" ]
          else
            map (k: "resolver_preload: \"${k}\" is not an account public key") badKeys
            ++ map (k: "resolver_preload.${k}: not a JWT") badJwts
            ++ (
              if
                has "system_account"
                && isAccountKey serverJson.system_account
                && !(preload ? ${serverJson.system_account})
              then
                [ "resolver_preload has no JWT for the system account ${sysQuoted}" ]
              else
                [ ]
            )
        )
      ];

  # The `resolver` setting. "memory": every account JWT is in the config.
  # "full": a writable JWT directory under dataDir (nixpkgs' nats unit may
  # only write below services.nats.dataDir).
  resolverFor =
    {
      resolver,
      dataDir ? defaults.dataDir,
    }:
    if resolver == "memory" then
      "MEMORY"
    else if resolver == "full" then
      {
        type = "full";
        dir = "${dataDir}/${defaults.fullResolver.subdir}";
        inherit (defaults.fullResolver) allow_delete interval timeout;
      }
    else
      throw "clan-nats: resolver must be \"memory\" or \"full\", not \"${toString resolver}\"";

  # `resolver_preload`: every account for "memory"; for "full" only the
  # system account (the others are pushed to the server and kept in its dir).
  preloadFor =
    {
      serverJson,
      resolver,
    }:
    if resolver == "full" then
      { ${serverJson.system_account} = serverJson.resolver_preload.${serverJson.system_account}; }
    else
      serverJson.resolver_preload;

  # The part of the final services.nats.settings that nats-server cannot change
  # on SIGHUP (listen address and port, name, resolver type and directory,
  # JetStream, the operator and system account): the module restarts the
  # server when it changes. Everything else, resolver_preload (the accounts)
  # first, is reloaded. builtins.intersectAttrs keeps only the names listed.
  nonReloadable =
    settings:
    builtins.intersectAttrs {
      host = null;
      listen = null;
      port = null;
      server_name = null;
      resolver = null;
      jetstream = null;
      operator = null;
      system_account = null;
      http = null;
      http_port = null;
    } settings;

  # Recursive merge: attribute sets merge key by key, anything else in
  # `right` replaces what `left` has (so user settings win, lists included).
  merge =
    left: right:
    builtins.foldl' (
      acc: name:
      acc
      // {
        ${name} =
          if acc ? ${name} && builtins.isAttrs acc.${name} && builtins.isAttrs right.${name} then
            merge acc.${name} right.${name}
          else
            right.${name};
      }
    ) left (builtins.attrNames right);

  # The whole services.nats.settings contribution of clan-nats: operator,
  # system account, resolver and preload, then `extra` merged last.
  settings =
    {
      serverJson,
      resolver ? defaults.resolver,
      dataDir ? defaults.dataDir,
      extra ? { },
    }:
    let
      problems = check serverJson;
    in
    if problems != [ ] then
      throw "clan-nats: server.json: ${builtins.concatStringsSep "; " problems}"
    else
      merge (
        {
          operator = serverJson.operator;
          system_account = serverJson.system_account;
          resolver = resolverFor { inherit resolver dataDir; };
          resolver_preload = preloadFor { inherit serverJson resolver; };
        }
        # The largest payload any user may send (server.json of clan-nats >= issue 10):
        # the server's limit caps every user, so it must be at least that.
        // (if serverJson ? max_payload then { inherit (serverJson) max_payload; } else { })
      ) extra;
}
