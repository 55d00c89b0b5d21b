# Tests of nix/defaults.nix: option defaults and the order of identityPaths.
let
  d = import ../defaults.nix;
  ssh = "/etc/ssh/ssh_host_ed25519_key";
in
import ./harness.nix {
  "constants: run dir, credential name, unit, port, resolver, data dir" = {
    expr = {
      inherit (d)
        runDir
        credentialName
        decryptUnit
        port
        resolver
        dataDir
        ;
    };
    expected = {
      runDir = "/run/clan-nats";
      credentialName = "nats.creds";
      decryptUnit = "clan-nats-credentials";
      port = 4222;
      resolver = "memory";
      dataDir = "/var/lib/nats";
    };
  };

  "identityPaths: no clan, no sops-nix: the ssh host key" = {
    expr = d.identityPaths { };
    expected = [ ssh ];
  };

  "identityPaths: clan with the sops store: the clan machine key first" = {
    expr = d.identityPaths { clan.secretStore = "sops"; };
    expected = [
      "/var/lib/sops-nix/key.txt"
      ssh
    ];
  };

  "identityPaths: clan with the age store: /etc/secret-vars/key.txt first" = {
    expr = d.identityPaths { clan.secretStore = "age"; };
    expected = [
      "/etc/secret-vars/key.txt"
      ssh
    ];
  };

  "identityPaths: clan directories are followed when changed" = {
    expr = [
      (d.identityPaths {
        clan = {
          secretStore = "sops";
          sopsSecretUploadDirectory = "/persist/sops";
        };
      })
      (d.identityPaths {
        clan = {
          secretStore = "age";
          ageSecretLocation = "/persist/vars";
        };
      })
    ];
    expected = [
      [
        "/persist/sops/key.txt"
        ssh
      ]
      [
        "/persist/vars/key.txt"
        ssh
      ]
    ];
  };

  "identityPaths: a clan store without machine key falls back to sops-nix, then ssh" = {
    expr = [
      (d.identityPaths { clan.secretStore = "password-store"; })
      (d.identityPaths {
        clan.secretStore = "password-store";
        sopsAgeKeyFile = "/var/lib/sops/age.txt";
      })
    ];
    expected = [
      [ ssh ]
      [
        "/var/lib/sops/age.txt"
        ssh
      ]
    ];
  };

  "identityPaths: the clan key wins over sops.age.keyFile, without repeats" = {
    expr = d.identityPaths {
      clan.secretStore = "sops";
      sopsAgeKeyFile = "/var/lib/sops-nix/key.txt";
    };
    expected = [
      "/var/lib/sops-nix/key.txt"
      ssh
    ];
  };

  "identityPaths: only ed25519 host keys, in their order" = {
    expr = d.identityPaths {
      sshHostKeys = [
        {
          type = "rsa";
          bits = 4096;
          path = "/etc/ssh/ssh_host_rsa_key";
        }
        {
          type = "ed25519";
          path = "/persist/ssh/ssh_host_ed25519_key";
        }
      ];
    };
    expected = [ "/persist/ssh/ssh_host_ed25519_key" ];
  };

  "identityPaths: no host key and no clan: empty (the module asserts)" = {
    expr = d.identityPaths { sshHostKeys = [ ]; };
    expected = [ ];
  };

  "clanMachineKey: null for stores without a machine age key" = {
    expr = map (secretStore: d.clanMachineKey { inherit secretStore; }) [
      "sops"
      "age"
      "password-store"
      "custom"
      null
    ];
    expected = [
      "/var/lib/sops-nix/key.txt"
      "/etc/secret-vars/key.txt"
      null
      null
      null
    ];
  };

  "unique keeps the first occurrence" = {
    expr = d.unique [
      "b"
      "a"
      "b"
      "c"
      "a"
    ];
    expected = [
      "b"
      "a"
      "c"
    ];
  };

  # clan-core declares options.clan.core.vars as one submodule option: under
  # `options` it is an option value, its sub-options are not attributes of it.
  "clanSettings: a clan machine is told by options ? clan.core.vars (one submodule option)" = {
    expr = d.clanSettings {
      options.clan.core.vars = {
        _type = "option";
        type = "submodule";
      };
      config.clan.core.vars = {
        settings.secretStore = "age";
        age.secretLocation = "/etc/secret-vars";
      };
    };
    expected = {
      secretStore = "age";
      sopsSecretUploadDirectory = "/var/lib/sops-nix";
      ageSecretLocation = "/etc/secret-vars";
    };
  };
  "clanSettings: no clan.core.vars option: null" = {
    expr = d.clanSettings {
      options.services = { };
      config = { };
    };
    expected = null;
  };
  "clanSettings + identityPaths: the age backend's machine key first" = {
    expr = d.identityPaths {
      clan = d.clanSettings {
        options.clan.core.vars._type = "option";
        config.clan.core.vars.settings.secretStore = "age";
      };
    };
    expected = [
      "/etc/secret-vars/key.txt"
      ssh
    ];
  };
  "identityUnits: an identity that is a clan var waits for the unit that installs it" = {
    expr = map (secretStore: d.identityUnits {
      clan = { inherit secretStore; };
      identityPaths = [ "/run/secrets/vars/openssh/ssh.id_ed25519" ssh ];
    }) [ "sops" "age" "password-store" ];
    expected = [
      [ "sops-install-secrets.service" ]
      [ "age-decrypt-secrets.service" ]
      [ ]
    ];
  };
  "identityUnits: no clan var among the identities, or no clan: none" = {
    expr = [
      (d.identityUnits { clan = { secretStore = "sops"; }; identityPaths = [ ssh ]; })
      (d.identityUnits { clan = null; identityPaths = [ "/run/secrets/x" ]; })
    ];
    expected = [ [ ] [ ] ];
  };
}
