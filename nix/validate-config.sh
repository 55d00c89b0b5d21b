#!/usr/bin/env bash
# The build-time check of the nats-server configuration that
# services.clan-nats.server deploys (modules/server.nix runs it in the Nix
# build sandbox, .ci/validate-proxy.sh runs it the same way as an unprivileged
# user). Usage: validate-config.sh CONF OUT
#
# `nats-server -t` does more than parse: for a directory resolver
# (`resolver = { type = "full"; dir = ...; }`) it creates `dir` (NewDirAccResolver
# -> os.MkdirAll), which fails in the sandbox for /var/lib/nats/jwt. So it checks
# a copy whose resolver `dir` (and JetStream `store_dir`) point into the build's
# temporary directory, and the `tls` block (its files are systemd credentials
# that exist only at run time) is left out; everything else is checked as deployed. OUT receives the
# unchanged CONF when the check passes.
set -euo pipefail
conf=$1
out=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/clan-nats-validate.XXXXXX")
jq --arg dir "$work/jwt" --arg js "$work/jetstream" '
  (if (.resolver | type) == "object" and (.resolver | has("dir")) then .resolver.dir = $dir else . end)
  | (if (.jetstream | type) == "object" and (.jetstream | has("store_dir")) then .jetstream.store_dir = $js else . end)
  | del(.tls)
' "$conf" >"$work/nats.conf"
nats-server -t -c "$work/nats.conf"
cp "$conf" "$out"
rm -rf "$work"
