# Option defaults and the identity selection of the NixOS modules. builtins only.
rec {
  # services.clan-nats.server
  port = 4222;
  resolver = "memory";
  # nixpkgs' services.nats.dataDir default; the "full" resolver keeps its JWTs below it.
  dataDir = "/var/lib/nats";
  fullResolver = {
    subdir = "jwt";
    allow_delete = false;
    interval = "2m";
    timeout = "1.9s";
  };

  # The configuration nats.service runs (under /etc): a stable path, so an
  # account change is a new file and a reload, not a new unit and a restart.
  etcConfig = "clan-nats/nats.conf";

  # services.clan-nats.server on a fleet store (server/<host>/): the route
  # credential (server/cluster.env.age) decrypted at boot into its own
  # root-only ramfs, handed to nats.service as EnvironmentFile=.
  clusterRunDir = "/run/clan-nats-cluster";
  clusterEnvName = "cluster";
  clusterEnvSuffix = ".env";
  clusterEnvFile = "${clusterRunDir}/${clusterEnvName}${clusterEnvSuffix}";
  clusterUnit = "clan-nats-cluster-env";
  clusterPort = 6222;

  # services.clan-nats.credentials
  # Root-only ramfs that holds the decrypted creds. Keep in sync with the
  # mount in nix/decrypt-script.nix and with nix/README.md.
  runDir = "/run/clan-nats";
  credentialName = "nats.creds";
  decryptUnit = "clan-nats-credentials";

  # Machine keys a host may decrypt with.
  sshHostKey = "/etc/ssh/ssh_host_ed25519_key";
  # clan-core: `${clan.core.vars.sops.secretUploadDirectory}/key.txt` (sops
  # backend) and `${clan.core.vars.age.secretLocation}/key.txt` (age backend).
  clanSopsDir = "/var/lib/sops-nix";
  clanAgeDir = "/etc/secret-vars";

  # The clan machine age key for a clan secret store, or null for a store
  # that has no machine age key ("password-store", "custom", or no clan).
  clanMachineKey =
    {
      secretStore ? null,
      sopsSecretUploadDirectory ? clanSopsDir,
      ageSecretLocation ? clanAgeDir,
    }:
    if secretStore == "sops" then
      "${sopsSecretUploadDirectory}/key.txt"
    else if secretStore == "age" then
      "${ageSecretLocation}/key.txt"
    else
      null;

  # The clan settings of a NixOS evaluation (`options`, `config` of a module),
  # or null when the machine is no clan machine. clan-core declares
  # `options.clan.core.vars` as ONE submodule option (nixosModules/clanCore/vars)
  # that the sops and age backends extend with more submodule options: its
  # sub-options never appear under `options`, so only `options ? clan.core.vars`
  # tells a clan machine; the settings are read from `config`, each with its default.
  clanSettings =
    { options, config }:
    if options ? clan.core.vars then
      let
        vars = config.clan.core.vars;
      in
      {
        secretStore = vars.settings.secretStore or null;
        sopsSecretUploadDirectory = vars.sops.secretUploadDirectory or clanSopsDir;
        ageSecretLocation = vars.age.secretLocation or clanAgeDir;
      }
    else
      null;

  # The units that install a clan var on the machine, for an identity that is
  # itself a clan var (the sshd service's host key, under /run/secrets): the
  # decrypt unit is ordered after them. sops backend: sops-nix installs the
  # secrets in activation, or in sops-install-secrets.service with sysusers;
  # age backend: clan's activation script setupSecrets, or age-decrypt-secrets.service
  # with sysusers/userborn (clan-core nixosModules/clanCore/vars/secret/age.nix).
  # (An activation script always runs before the decrypt unit starts.)
  identityUnits =
    { clan, identityPaths }:
    let
      varPaths = builtins.filter (p: builtins.substring 0 13 p == "/run/secrets/") identityPaths;
    in
    if clan == null || varPaths == [ ] then
      [ ]
    else if clan.secretStore == "sops" then
      [ "sops-install-secrets.service" ]
    else if clan.secretStore == "age" then
      [ "age-decrypt-secrets.service" ]
    else
      [ ];

  # The default of services.clan-nats.credentials.identityPaths, in order:
  #   1. the clan machine key, when the machine is a clan machine (`clan` is
  #      the clan settings, see clanMachineKey) with a sops or age store;
  #   2. else sops-nix's `sops.age.keyFile`, when set;
  #   3. then, always, the ed25519 ssh host keys (`services.openssh.hostKeys`
  #      entries of type ed25519; /etc/ssh/ssh_host_ed25519_key by default),
  #      so creds encrypted to a host's ssh key decrypt on a clan machine too.
  # This only orders candidates and evaluates purely: which files exist is
  # known on the machine, at boot. There the decrypt script skips the paths
  # it cannot read and passes the rest to `age -d -i …` (age tries them all),
  # and fails loudly when none is readable.
  identityPaths =
    {
      clan ? null,
      sopsAgeKeyFile ? null,
      sshHostKeys ? [
        {
          type = "ed25519";
          path = sshHostKey;
        }
      ],
    }:
    let
      clanKey = if clan == null then null else clanMachineKey clan;
      first =
        if clanKey != null then
          [ clanKey ]
        else if sopsAgeKeyFile != null then
          [ sopsAgeKeyFile ]
        else
          [ ];
      isEd25519 = k: (k.type or null) == "ed25519" && k ? path;
      ed25519 = map (k: k.path) (builtins.filter isEd25519 sshHostKeys);
    in
    unique (first ++ ed25519);

  # The list without repeats, first occurrence kept.
  unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];
}
