# checks.vm: two NixOS VMs. `server` runs NATS in operator mode through
# services.clan-nats.server; `client` gets the person-service creds through
# services.clan-nats.credentials and uses them from DynamicUser units. Then
# both switch to a store with one more user: the server reloads (same process,
# open connections stay), and the new user connects.
#
# No import from derivation: the two stores are committed TEST ONLY fixtures
# (nix/tests/fixtures/vm, written by its regenerate.sh with a throwaway owner
# identity), for hosts whose recipients are the TEST ONLY keys of
# tests/fixtures/insecure/. Their seeds are encrypted to that discarded owner.
{
  pkgs,
  nixosModules,
  clan-nats,
}:
let
  inherit (pkgs) lib;
  store = ../tests/fixtures/vm/store-v1;
  # store-v1 reconciled with config-v2.json: a new account (media) with one
  # user, new-service: a change of the preloaded accounts, so a reload.
  storeV2 = ../tests/fixtures/vm/store-v2;
  changed = "accounts-changed";

  credsFile = "/run/clan-nats/person-service.creds";

  # What the test script needs from the manifests, read at evaluation time
  # through nix/store.nix (both stores are source paths: no import from
  # derivation), so it holds for a store of either manifest format.
  st = import ../store.nix;
  hostCreds = import ../host-creds.nix;
  manifest = st.manifest store;
  operatorKey = manifest.operator.public_key;
  coreKey = (builtins.head (builtins.filter (a: a.name == "core") manifest.accounts)).public_key;
  # The creds file of the user store-v2 adds (relative to the store).
  newServiceCreds =
    let
      rel = hostCreds.userCreds (st.manifest storeV2) "new-service";
    in
    if rel == null then throw "checks.vm: store-v2 has no user new-service" else rel;

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
      firewallInterfaces = [ "eth1" ];
    };
    specialisation.${changed}.configuration.services.clan-nats.server.store = lib.mkForce storeV2;
    environment.systemPackages = [ clan-nats ];
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
    specialisation.${changed}.configuration.services.clan-nats.credentials = {
      store = lib.mkForce storeV2;
      users.new-service.units = [ ];
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
      switchTo =
        node: "${nodes.${node}.system.build.toplevel}/specialisation/${changed}/bin/switch-to-configuration test";
      asNew = lib.concatStringsSep " " [
        "systemd-run --wait --pipe --quiet --collect"
        "-p DynamicUser=yes"
        "-p LoadCredential=nats.creds:/run/clan-nats/new-service.creds"
        "-E HOME=/tmp"
        "--"
        "${natsAsPerson}"
      ];
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
      operator = "${operatorKey}"
      core = "${coreKey}"
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

      with subtest("an account change reloads the server: connections stay, the new user connects"):
          pid = server.succeed("systemctl show -p MainPID --value nats.service").strip()
          # A subscriber connected before the change, as person-service.
          client.succeed(
              "systemd-run --unit=long-sub -p DynamicUser=yes"
              " -p LoadCredential=nats.creds:${credsFile} -E HOME=/tmp --"
              " ${natsAsPerson} sub vmtest.person.long"
          )
          client.wait_until_succeeds("journalctl -u long-sub -o cat | grep -F 'Subscribing on vmtest.person.long'", timeout=60)
          client.fail("test -e /run/clan-nats/new-service.creds")
          server.succeed("${switchTo "server"}")
          server.wait_until_succeeds(
              "journalctl -u nats.service -o cat | grep -F 'Reloaded server configuration'", timeout=30
          )
          assert server.succeed("systemctl show -p MainPID --value nats.service").strip() == pid, "nats restarted"
          server.succeed("test -f ${storeV2}/${newServiceCreds}")
          client.succeed("systemctl is-active long-sub.service")
          client.succeed(as_person + "pub vmtest.person.long 'after the change'")
          client.wait_until_succeeds("journalctl -u long-sub -o cat | grep -F 'after the change'", timeout=30)
          client.succeed("${switchTo "client"}")
          client.wait_for_unit("clan-nats-credentials.service")
          client.succeed("test -e /run/clan-nats/new-service.creds")
          # new-service is in the account the change added: only a reloaded
          # server knows it, so connecting and publishing proves the reload.
          client.wait_until_succeeds("${asNew} pub vmtest.media.hello 'new account' 2>&1", timeout=60)
          client.succeed("systemctl is-active long-sub.service")

      with subtest("nsc describes the store's public JWTs"):
          server.succeed("mkdir -p /tmp/nsc/keys && cp -R ${store}/nsc/stores /tmp/nsc/ && chmod -R u+w /tmp/nsc")
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
