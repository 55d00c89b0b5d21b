#!/usr/bin/env bash
# CI for the fleet (issue 11): a 3-server store from the example (with its TEST-ONLY keys), through the
# official jwt library (jwtcheck), the reference age CLI, and `nats-server -t`
# of every per-host config with the route credential in the environment only.
# Usage: .ci/fleet.sh BIN JWTCHECK WORK PLAIN   (PLAIN on tmpfs, removed by the caller)
set -euo pipefail
bin=$1 jwtcheck=$2 work=$3 plain=$4
echo "== fleet: per-server configs of a 3-server store"
config="$work/fleet.json"
python3 - "$config" <<'PY'
import json, sys
c = json.load(open("tests/fixtures/insecure/example.json"))
for i, h in enumerate(c["hosts"][:3]):
    h.update(nats_server=True, address="127.0.0.1", client_port=14401 + i, cluster_port=16401 + i)
c["nats_cluster"] = {"name": "ci-fleet"}
json.dump(c, open(sys.argv[1], "w"))
PY
dir="$work/fleet" key="$work/fleet.key"
CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS=1 "$bin" generate --config "$config" --out "$dir" --identity "$key" --new-identity >/dev/null
"$bin" verify "$dir" --identity "$key"
[ ! -e "$dir/server/nats-server.conf" ] || { echo "a fleet has no single server config" >&2; exit 1; }
mkdir -p "$plain/fleet"
(cd "$dir" && find . -name '*.age' -print) | while read -r f; do
  mkdir -p "$plain/fleet/$(dirname "$f")"
  age -d -i "$key" -o "$plain/fleet/${f%.age}" "$dir/$f"
done
out=$("$jwtcheck" "$dir/nsc/stores" "$plain/fleet/nsc")
echo "$out" | tail -1
if echo "$out" | grep -q '^WARN'; then echo "$out" >&2; exit 1; fi
# The route credential reaches nats-server through the environment only.
password=$(sed -n 's/^CLAN_NATS_CLUSTER_PASSWORD=//p' "$plain/fleet/server/cluster.env")
if grep -rqF "$password" "$dir"; then echo "the route password is in the store in plaintext" >&2; exit 1; fi
# (in a scratch working directory: the full resolver creates its `jwt` dir there)
mkdir -p "$work/fleet-cwd"
for conf in "$dir"/server/*/nats-server.conf; do
  if (cd "$work/fleet-cwd" && nats-server -t -c "$conf" >/dev/null 2>&1); then
    echo "$conf passed without the route credential" >&2; exit 1
  fi
  (cd "$work/fleet-cwd" && set -a && . "$plain/fleet/server/cluster.env" && nats-server -t -c "$conf")
done
echo "fleet: $(ls -d "$dir"/server/*/ | wc -l) server configs valid, route credential only in $(basename "$dir")/server/cluster.env.age"
