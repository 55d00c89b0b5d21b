#!/usr/bin/env bash
# The build-time check of the per-host nats-server configuration of a fleet
# store (server/<host>/nats-server.conf, plus what modules/server.nix appends),
# run by services.clan-nats.server in the Nix build sandbox.
# Usage: validate-fleet-config.sh CONF OUT
#
# The conf takes the route credential from the environment
# ($CLAN_NATS_CLUSTER_PASSWORD, $CLAN_NATS_CLUSTER_ROUTES): the check sets
# DUMMY values (never the real credential, which is not in the Nix store).
# Its resolver dir is relative (`jwt`): nats-server -t runs in a temporary
# directory, where it creates it. The `tls { … }` blocks (their files exist
# only on the machine) are left out of the checked copy. OUT receives the
# unchanged CONF when the check passes.
set -euo pipefail
conf=$(realpath "$1")
out=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/clan-nats-validate.XXXXXX")
# clan-nats writes each tls block as "tls {" ... "}" on lines of their own.
sed -e '/^[[:space:]]*tls {$/,/^[[:space:]]*}$/d' "$conf" >"$work/nats.conf"
(
  cd "$work"
  export CLAN_NATS_CLUSTER_PASSWORD=${CLAN_NATS_DUMMY_PASSWORD:-clan-nats-validate-dummy}
  export CLAN_NATS_CLUSTER_ROUTES=${CLAN_NATS_DUMMY_ROUTES:-'["nats-route://route:clan-nats-validate-dummy@127.0.0.1:6222"]'}
  nats-server -t -c "$work/nats.conf"
)
cp "$conf" "$out"
rm -rf "$work"
