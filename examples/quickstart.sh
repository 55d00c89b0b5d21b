#!/usr/bin/env bash
# Quick start: the shipped example (examples/clan-bootstrap.json) with a
# throw-away host key generated for each of its hosts, then a full store.
#
#   examples/quickstart.sh [OUT]        (default OUT: ./demo; must not exist)
#
# OUT/host-keys/<host>.agekey  demo host identities (0600; a real host uses its own key)
# OUT/org.json                 the example with its placeholders replaced by those keys
# OUT/owner.key                your owner identity (0600)
# OUT/store/                   the store: JWTs, age-encrypted seeds and creds, server config
#
# Uses $CLAN_NATS if set, else builds target/release/clan-nats with cargo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-demo}
if [ -e "$out" ]; then
  echo "quickstart: $out exists; give a new directory (nothing was changed)" >&2
  exit 2
fi
bin=${CLAN_NATS:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -q --manifest-path "$root/Cargo.toml"
  bin="$root/target/release/clan-nats"
fi
mkdir -m 700 "$out" "$out/host-keys"
config="$out/org.json"
cp "$root/examples/clan-bootstrap.json" "$config.new"
grep -o 'REPLACE-WITH-PUBLIC-KEY-OF-[A-Za-z0-9_-]*' "$config.new" | sed 's/^REPLACE-WITH-PUBLIC-KEY-OF-//' | sort -u >"$out/hosts"
while read -r host; do
  public=$("$bin" keygen --output "$out/host-keys/${host}.agekey")
  # The placeholder runs to the end of the JSON string.
  sed -i "s|\"REPLACE-WITH-PUBLIC-KEY-OF-${host}[^\"]*\"|\"${public}\"|" "$config.new"
  echo "host ${host}: demo key $out/host-keys/${host}.agekey (${public})"
done <"$out/hosts"
rm "$out/hosts"
mv "$config.new" "$config"
"$bin" generate --config "$config" --dir "$out/store" --identity "$out/owner.key" --new-identity
"$bin" verify --dir "$out/store" --identity "$out/owner.key"
"$bin" list accounts --dir "$out/store"
cat <<EOT

Next:
  nats-server -c $out/store/server/nats-server.conf          # runs as it is, in operator mode
  $bin describe user audio-service --dir $out/store
  edit $config, then: $bin plan --config $config --dir $out/store --identity $out/owner.key
  and apply it:       $bin generate --config $config --dir $out/store --identity $out/owner.key
EOT
