# services.clan-nats.credentials: give this machine's services the NATS creds
# that a clan-nats store assigns to it.
#
# The .age files (encrypted) are referenced from the Nix store. A oneshot
# service decrypts them with this machine's key into a root-only ramfs,
# /run/clan-nats/<name>.creds (mode 0400), at boot and on every switch, and
# each consuming unit gets `LoadCredential=nats.creds:/run/clan-nats/<name>.creds`,
# so it reads $CREDENTIALS_DIRECTORY/nats.creds (this works with DynamicUser=).
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    literalMD
    mkIf
    mkOption
    types
    ;
  helpers = import ../nix;
  inherit (helpers) defaults hostCreds;

  cfg = config.services.clan-nats.credentials;
  opt = "services.clan-nats.credentials";
  unit = "${defaults.decryptUnit}.service";

  # Always read through nix/store.nix: format 1's shape (users in their
  # accounts, creds per host) whether the store is of manifest format 1 or 2.
  manifest = if cfg.store == null then null else helpers.store.manifest cfg.store;
  users = lib.attrValues cfg.users;

  # Clan machines declare clan.core.vars (one submodule option, see
  # nix/defaults.nix clanSettings); null elsewhere.
  clan = defaults.clanSettings { inherit options config; };
  sopsAgeKeyFile = if options ? sops.age.keyFile then config.sops.age.keyFile else null;

  exampleFile = "./nats-store/nsc/stores/acme/accounts/core/users/person-service.creds.age";

  loadCredential = u: hostCreds.loadCredential { inherit (u) credential path; };

  absoluteOutsideStore = types.addCheck types.str (
    s: lib.hasPrefix "/" s && !lib.hasPrefix "${builtins.storeDir}/" s
  );

  decryptScript = pkgs.writeShellApplication {
    name = "clan-nats-decrypt-credentials";
    runtimeInputs = [
      cfg.agePackage
      pkgs.coreutils
      pkgs.util-linux
    ];
    text = helpers.decryptScript {
      runDir = defaults.runDir;
      inherit (cfg) identityPaths;
      creds = map (u: { inherit (u) name file; }) users;
    };
  };

  # service attribute name -> the users it gets creds from
  consumers = builtins.foldl' (
    acc: u:
    builtins.foldl' (
      acc': unitName:
      let
        service = hostCreds.serviceName unitName;
      in
      if service == null then acc' else acc' // { ${service} = (acc'.${service} or [ ]) ++ [ u ]; }
    ) acc u.units
  ) { } users;

  userModule =
    { name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          readOnly = true;
          description = "The user's name in the store (the attribute name).";
        };

        file = mkOption {
          type = types.nullOr types.path;
          default =
            let
              rel = hostCreds.userCreds manifest name;
            in
            if manifest == null || rel == null then null else helpers.store.file cfg.store rel;
          defaultText = literalMD "the user's `creds` file in the store's manifest";
          example = literalExpression exampleFile;
          description = ''
            The age-encrypted creds file. It must be one that the store's
            manifest assigns to this host (`hostName`): asking for any other
            is an evaluation error.
          '';
        };

        units = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "person-service" ];
          description = ''
            systemd services that get these creds: each gets
            `LoadCredential=<credential>:<path>`, is ordered after (and wants)
            `${unit}`, and restarts when the encrypted file changes. The
            service reads `$CREDENTIALS_DIRECTORY/<credential>` (in unit
            settings: `%d/<credential>`).
          '';
        };

        credential = mkOption {
          type = types.strMatching "[A-Za-z0-9_.-]+";
          default = defaults.credentialName;
          description = ''
            The credential name the units see (`$CREDENTIALS_DIRECTORY/<credential>`).
            Change it only for a unit that takes the creds of two users.
          '';
        };

        path = mkOption {
          type = types.str;
          readOnly = true;
          default = "${defaults.runDir}/${name}.creds";
          defaultText = literalExpression ''"/run/clan-nats/''${name}.creds"'';
          description = ''
            Where the decrypted creds are (root-only, mode 0400). Prefer
            `units` (LoadCredential=) over reading this path.
          '';
        };
      };
    };
in
{
  _class = "nixos";

  options.services.clan-nats.credentials = {
    store = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = literalExpression "./nats-store";
      description = ''
        The store directory written by `clan-nats generate` (in your flake).
        Its manifest (`manifest.json`, with `manifest.d/` since format 2)
        says which creds this host may have; the encrypted `.age` files are
        taken from it.
      '';
    };

    hostName = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = literalExpression "config.networking.hostName";
      description = "The name of this machine among the `hosts` of the store's manifest.";
    };

    identityPaths = mkOption {
      type = types.listOf absoluteOutsideStore;
      default = defaults.identityPaths {
        inherit clan sopsAgeKeyFile;
        sshHostKeys = config.services.openssh.hostKeys;
      };
      defaultText = literalMD ''
        the clan machine key when this is a clan machine
        (`/var/lib/sops-nix/key.txt` with the sops secret store,
        `/etc/secret-vars/key.txt` with the age store), else `sops.age.keyFile`
        when sops-nix sets one; then the ed25519 keys of
        `services.openssh.hostKeys` (`/etc/ssh/ssh_host_ed25519_key`)
      '';
      example = [ "/var/lib/sops-nix/key.txt" ];
      description = ''
        age identities of this machine (X25519 identity files or ssh-ed25519
        private keys), tried in order. At boot the ones that cannot be read
        are skipped; decryption fails if none can. They must match the
        `age_recipient` of this host in the clan-nats config. Absolute paths
        outside the Nix store (a path literal would copy the key into it).
      '';
    };

    identityUnits = mkOption {
      type = types.listOf types.str;
      default = defaults.identityUnits {
        inherit clan;
        inherit (cfg) identityPaths;
      };
      defaultText = literalMD ''
        on a clan machine, when an identity is a clan var (under `/run/secrets/`):
        the unit of the secret store that installs it
      '';
      description = ''
        Units that put an identity in place; the decrypt unit is ordered
        after (and wants) them. For example the unit that installs a clan
        var holding this machine's key.
      '';
    };

    servers = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "nats://nats1:4222"
        "nats://nats2:4222"
      ];
      description = ''
        Client URLs of the NATS servers. When set, every unit in `users.*.units`
        gets `NATS_URL` (the URLs joined with commas, as NATS clients read it).
        The clan service sets it from the instance's server machines.
      '';
    };

    agePackage = mkOption {
      type = types.package;
      default = pkgs.age;
      defaultText = literalExpression "pkgs.age";
      description = "The `age` implementation that decrypts (`rage` works too).";
    };

    directory = mkOption {
      type = types.str;
      readOnly = true;
      default = defaults.runDir;
      description = "The root-only ramfs that holds the decrypted creds.";
    };

    users = mkOption {
      type = types.attrsOf (types.submodule userModule);
      default = { };
      example = literalExpression ''
        {
          person-service.units = [ "person-service" ];
        }
      '';
      description = ''
        NATS users (services of the clan-nats config) whose creds this machine
        gets, by name. The machine may only have the users that the store's
        manifest assigns to `hostName`.
      '';
    };
  };

  config = lib.mkMerge [
    (mkIf (cfg.users == { }) {
      # No user (any more): the same unit, prune only. On the switch that
      # removes a host's last user it is restarted and deletes the creds left
      # in /run/clan-nats; where nothing was ever decrypted it does not run.
      systemd.services.${defaults.decryptUnit} = {
        description = "Remove NATS credentials this machine no longer has (clan-nats)";
        wantedBy = [ "multi-user.target" ];
        unitConfig.ConditionPathExists = defaults.runDir;
        stopIfChanged = false;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = lib.getExe decryptScript;
          UMask = "0077";
        };
      };
    })
    (mkIf (cfg.users != { }) {
      assertions = [
        {
          assertion = cfg.store != null;
          message = "${opt}.store must be set (the clan-nats store directory) to use ${opt}.users.";
        }
        {
          assertion = cfg.identityPaths != [ ];
          message = "${opt}.identityPaths must name this machine's age or ssh-ed25519 key.";
        }
      ]
      ++ lib.optionals (manifest != null) (
        let
          hostProblem = hostCreds.checkHost {
            inherit manifest;
            inherit (cfg) hostName;
          };
          userProblems = map (
            u:
            hostCreds.checkUser {
              inherit manifest;
              inherit (cfg) hostName;
              inherit (u) name file;
            }
          ) users;
        in
        map (message: {
          assertion = false;
          inherit message;
        }) (builtins.filter (m: m != null) ([ hostProblem ] ++ userProblems))
      )
      ++ map (u: {
        assertion = hostCreds.validName u.name;
        message = "${opt}.users.${u.name}: the name must be a file name ([A-Za-z0-9._-], not starting with . or -).";
      }) users
      ++ lib.concatMap (
        u:
        map (unitName: {
          assertion = hostCreds.serviceName unitName != null;
          message = "${opt}.users.${u.name}.units: \"${unitName}\" is not a service; LoadCredential= only exists for .service units.";
        }) u.units
      ) users
      ++ map (message: {
        assertion = false;
        inherit message;
      }) (hostCreds.duplicateCredentials users);

      warnings = lib.concatMap (
        service:
        let
          def = config.systemd.services.${service};
          noCommand =
            !(def.serviceConfig ? ExecStart)
            && def.script == ""
            && def.overrideStrategy != "asDropin";
          warning = "${opt}: systemd.services.${service} gets NATS creds but has no ExecStart or script; is the unit name right?";
        in
        lib.optional noCommand warning
      ) (builtins.attrNames consumers);

      systemd.services = lib.mapAttrs (_service: us: {
        wants = [ unit ];
        after = [ unit ];
        # The .age file's store path changes with its content: the unit restarts.
        restartTriggers = map (u: u.file) us;
        serviceConfig.LoadCredential = map loadCredential us;
        environment = lib.optionalAttrs (cfg.servers != [ ]) {
          NATS_URL = lib.concatStringsSep "," cfg.servers;
        };
      }) consumers
      // {
        ${defaults.decryptUnit} = {
          description = "Decrypt the NATS credentials of this machine (clan-nats)";
          wantedBy = [ "multi-user.target" ];
          before = map (service: "${service}.service") (builtins.attrNames consumers);
          # An identity that is itself a clan var is installed by these first.
          after = cfg.identityUnits;
          wants = cfg.identityUnits;
          # Keys can live on another file system (/var/lib/sops-nix/key.txt).
          unitConfig.RequiresMountsFor = cfg.identityPaths;
          # Restarted in place on a switch, so the consumers (which only want
          # it) keep running; they restart themselves when their creds change.
          stopIfChanged = false;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            ExecStart = lib.getExe decryptScript;
            UMask = "0077";
          };
        };
      };

      # Decrypt again on every switch, not only when the unit changed: NixOS
      # restarts the units that activation scripts list in
      # /run/nixos/activation-restart-list (NixOS manual, "Unit handling").
      # At boot (no NIXOS_ACTION) the service runs from multi-user.target.
      system.activationScripts.clan-nats-credentials = {
        deps = [ ];
        text = ''
          case "''${NIXOS_ACTION:-}" in
            switch | test)
              mkdir -p /run/nixos
              echo ${unit} >> /run/nixos/activation-restart-list
              ;;
          esac
        '';
      };
    })
  ];
}
