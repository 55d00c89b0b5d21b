# checks.vm: two NixOS VMs. `server` runs NATS in operator mode through
# services.clan-nats.server; `client` gets the person-service creds through
# services.clan-nats.credentials and uses them from DynamicUser units.
#
# Nothing secret is committed for this test: the store is generated at build
# time, with a throwaway owner identity that never leaves the build, for a
# client whose recipient is the TEST ONLY key of tests/fixtures/insecure/.
{
  pkgs,
  nixosModules,
  clan-nats,
}:
let
  inherit (pkgs) lib;
  insecure = ../../tests/fixtures/insecure;
  publicKey = name: lib.trim (builtins.readFile (insecure + "/${name}.ssh_host_ed25519_key.pub"));

  # A one-account organization: person-service may use vmtest.person.> only.
  testConfig = {
    organization.name = "vmtest";
    organizational_units = [
      {
        name = "Core";
        nats_account_name = "core";
      }
    ];
    service_people = [
      {
        name = "person-service";
        organizational_unit = "Core";
        role = "Service";
        nats_permissions = {
          publish = [ "vmtest.person.>" ];
          subscribe = [ "vmtest.person.>" ];
          allow_responses = true;
        };
      }
    ];
    hosts = [
      {
        name = "server";
        age_recipient = publicKey "nats1";
        nats_server = true;
      }
      {
        name = "client";
        age_recipient = publicKey "core1";
        services = [ "person-service" ];
      }
    ];
    owner.id = "vm-test";
  };

  # out: the store (public files and .age files), as a user's flake holds it.
  # nsc: `clan-nats export-nsc` of it, PLAINTEXT seeds: only the test script
  # uses it (for nsc), it is in no machine's closure.
  store =
    pkgs.runCommand "clan-nats-vm-test-store"
      {
        nativeBuildInputs = [ clan-nats ];
        outputs = [
          "out"
          "nsc"
        ];
        orgConfig = builtins.toJSON testConfig;
        passAsFile = [ "orgConfig" ];
      }
      ''
        identity=$TMPDIR/owner.key
        clan-nats generate --config "$orgConfigPath" --out "$TMPDIR/store" --identity "$identity" --new-identity
        clan-nats verify "$TMPDIR/store" --identity "$identity"
        clan-nats export-nsc --dir "$TMPDIR/store" --identity "$identity" --to "$TMPDIR/nsc"
        rm -f "$identity"
        cp -R "$TMPDIR/store" "$out"
        cp -R "$TMPDIR/nsc" "$nsc"
      '';

  credsFile = "/run/clan-nats/person-service.creds";

  # natscli as person-service: run inside a unit that has the credential.
  natsAsPerson = pkgs.writeShellScript "nats-as-person-service" ''
    exec ${lib.getExe pkgs.natscli} --creds "$CREDENTIALS_DIRECTORY/nats.creds" -s nats://server:4222 "$@"
  '';
in
pkgs.testers.runNixOSTest {
  name = "clan-nats";

  nodes.server = {
    imports = [ nixosModules.server ];
    services.clan-nats.server = {
      enable = true;
      inherit store;
      openFirewall = true;
    };
  };

  nodes.client = {
    imports = [
      nixosModules.credentials
      ./vm-insecure-host-key.nix
    ];

    services.clan-nats.credentials = {
      inherit store;
      # hostName defaults to networking.hostName, "client" in this test.
      users.person-service.units = [ "person-service" ];
    };

    # A service that reads its creds only through LoadCredential=: it
    # answers requests on vmtest.person.echo (subscribe, then publish the reply).
    systemd.services.person-service = {
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      startLimitIntervalSec = 0;
      environment.HOME = "/tmp";
      serviceConfig = {
        DynamicUser = true;
        Restart = "always";
        RestartSec = 1;
        ExecStart = "${natsAsPerson} reply vmtest.person.echo 'pong from person-service'";
      };
    };

    environment.systemPackages = [ pkgs.natscli ];
  };

  testScript =
    { nodes, ... }:
    let
      closure = pkgs.closureInfo { rootPaths = [ nodes.client.system.build.toplevel ]; };
      asPerson = lib.concatStringsSep " " [
        "systemd-run --wait --pipe --quiet --collect"
        "-p DynamicUser=yes"
        "-p LoadCredential=nats.creds:${credsFile}"
        "-E HOME=/tmp"
        "--"
        "${natsAsPerson}"
      ];
    in
    ''
      import json

      manifest = json.loads(open("${store}/manifest.json").read())
      operator = manifest["operator"]["public_key"]
      core = next(a["public_key"] for a in manifest["accounts"] if a["name"] == "core")
      creds = "${credsFile}"
      as_person = "${asPerson} "

      start_all()

      with subtest("server: nats-server in operator mode"):
          server.wait_for_unit("nats.service")
          server.wait_for_open_port(4222)

      with subtest("client: the creds are decrypted into a root-only ramfs"):
          client.wait_for_unit("clan-nats-credentials.service")
          client.succeed(f"test \"$(stat -c %a:%U:%G {creds})\" = 400:root:root")
          client.succeed("test \"$(stat -c %a /run/clan-nats)\" = 700")
          client.succeed("test \"$(findmnt -n -o FSTYPE /run/clan-nats)\" = ramfs")
          client.succeed(f"grep -q -- '-----BEGIN NATS USER JWT-----' {creds}")
          client.succeed(f"grep -q -- '-----BEGIN USER NKEY SEED-----' {creds}")
          client.fail("ls /run/clan-nats/*.tmp")  # nothing left half-written

      with subtest("the seed is in no store path of the client's system"):
          seed = client.succeed(f"sed -n '/BEGIN USER NKEY SEED/{{n;p}}' {creds}").strip()
          assert seed.startswith("SU") and len(seed) == 58, "no user seed in the creds"
          leaks = client.succeed(
              f"xargs -a ${closure}/store-paths grep -r -l -s -F -e '{seed}' -- || true"
          )
          assert leaks.strip() == "", f"user seed found in the Nix store: {leaks}"
          # The same search does reach the encrypted creds, so it looked.
          client.succeed(
              "xargs -a ${closure}/store-paths grep -r -l -s -F -e 'age-encryption.org/v1' --"
              " | grep -q '/users/person-service.creds.age$'"
          )

      with subtest("a DynamicUser unit reads the creds through LoadCredential only"):
          client.wait_for_unit("person-service.service")
          client.succeed(
              f"systemctl cat person-service.service | grep -F 'LoadCredential=nats.creds:{creds}'"
          )
          client.fail(f"systemd-run --wait --pipe --quiet -p DynamicUser=yes cat {creds}")

      with subtest("allowed subject: request and reply with the person-service creds"):
          out = client.wait_until_succeeds(
              as_person + "request vmtest.person.echo ping --timeout 2s 2>&1", timeout=120
          )
          assert "pong from person-service" in out, out

      with subtest("denied subject: the server refuses the publish"):
          client.execute(as_person + "pub vmtest.media.audio 'must not pass' 2>&1")
          server.wait_until_succeeds(
              "journalctl -u nats.service -o cat | grep -F 'Publish Violation'"
              " | grep -F 'vmtest.media.audio'",
              timeout=60,
          )

      with subtest("without creds the server refuses the connection"):
          client.fail("HOME=/tmp nats -s nats://server:4222 pub vmtest.person.x nope")

      with subtest("nsc describes the exported store (test-only plaintext copy)"):
          server.succeed("cp -R ${store.nsc} /tmp/nsc && chmod -R u+w /tmp/nsc")
          nsc = (
              "${lib.getExe pkgs.nsc} --config-dir /tmp/nsc-config"
              " --data-dir /tmp/nsc/stores --keystore-dir /tmp/nsc/keys "
          )
          server.succeed(nsc + "env --operator vmtest")
          out = server.succeed(nsc + "describe operator 2>&1")
          assert operator in out, out
          out = server.succeed(nsc + "describe account --name core 2>&1")
          assert core in out, out
    '';
}
