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
}
