#!/usr/bin/env bash
# Regenerates the seed corpora in fuzz/corpus/ from the example configs and a
# throwaway store. TEST ONLY material: the store's owner identity is created in
# a temporary directory and deleted; the creds seeds are plaintext credentials
# of that throwaway store (see corpus/README.md). Needs the `age` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
corpus="$root/fuzz/corpus"
insecure="$root/tests/fixtures/insecure"
cargo build -q --bin clan-nats
bin="$root/target/debug/clan-nats"
# The throwaway store encrypts to the committed TEST-ONLY host keys.
export CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for t in config jwt manifest verify age; do rm -rf "${corpus:?}/$t"; mkdir -p "$corpus/$t"; done
# The creds seeds hold plaintext nkey seeds: they live with the other marked
# TEST-ONLY material, not in the fuzz corpus (run_all.sh adds them for `creds`).
creds_seeds="$insecure/fuzz-creds"
rm -rf "$creds_seeds"; mkdir -p "$creds_seeds"

# config: the shipped example, the upstream cim-keys file, small edge cases.
cp tests/fixtures/insecure/example.json "$corpus/config/example.json"
cp tests/fixtures/cim-keys/clan-bootstrap.json "$corpus/config/upstream.json"
h1=$(grep -o 'age1[0-9a-z]*' "$insecure/dev1.agekey")
h2=$(cat "$insecure/nats1.ssh_host_ed25519_key.pub" | cut -d' ' -f1-2)
cat > "$corpus/config/store.json" <<JSON
{
  "organization": {"name": "fuzzorg"},
  "nsc_export_config": {"operator_name": "fuzzop"},
  "owner": {"id": "github:fuzz", "age_recipient": "$h1"},
  "organizational_units": [
    {"name": "Core", "nats_account_name": "core"},
    {"name": "Ops", "parent": "Core"},
    {"name": "Media", "nats_limits": {"conn": 10, "subs": 100, "payload": 4096, "data": -1,
      "jetstream": {"mem_storage": -1, "disk_storage": 1000, "streams": 2, "consumer": 4}}}
  ],
  "service_people": [
    {"name": "a-service", "organizational_unit": "Core", "role": "Service"},
    {"name": "b-service", "organizational_unit": "Ops", "role": "Service",
     "nats_permissions": {"publish": ["b.>"], "subscribe": ["b.* q"], "allow_responses": true, "max_payload": 4096}},
    {"name": "c-service", "organizational_unit": "Media", "role": "Service"},
    {"name": "alice", "organizational_unit": "Media", "role": "Admin"}
  ],
  "hosts": [
    {"name": "h1", "age_recipient": "$h1", "services": ["a-service", "c-service"]},
    {"name": "h2", "age_recipient": "$h2", "nats_server": true, "services": ["b-service", "c-service"]}
  ]
}
JSON
echo '{"organization": {"name": "o"}}' > "$corpus/config/minimal.json"
echo '{"organization": {"name": "o"}, "organizational_units": [{"name": "A", "parent": "B"}, {"name": "B", "parent": "A"}]}' > "$corpus/config/cycle.json"
echo '{"organization": {"name": "o"}, "service_people": [{"name": "x", "organizational_unit": "U", "role": "service", "nats_permissions": {"publish": ["a.>.b"]}}]}' > "$corpus/config/bad-subject.json"

# A throwaway store of store.json; its creds in plaintext via export-nsc.
"$bin" generate --config "$corpus/config/store.json" --out "$work/store" --identity "$work/owner.key" --new-identity >/dev/null
"$bin" export-nsc --dir "$work/store" --identity "$work/owner.key" --to "$work/nsc" >/dev/null
s="$work/store/nsc/stores/fuzzop"
cp "$s/fuzzop.jwt" "$corpus/jwt/operator.jwt"
cp "$s/accounts/core/core.jwt" "$corpus/jwt/account-core.jwt"
cp "$s/accounts/SYS/SYS.jwt" "$corpus/jwt/account-sys.jwt"
cp "$s/accounts/media/media.jwt" "$corpus/jwt/account-media-jetstream.jwt"
cp "$s/accounts/core/users/a-service.jwt" "$corpus/jwt/user-default.jwt"
cp "$s/accounts/core/users/b-service.jwt" "$corpus/jwt/user-permissions.jwt"
cp "$work/store/manifest.json" "$corpus/manifest/store.json"
"$bin" generate --config "$corpus/config/store.json" --out "$work/flat" --identity "$work/owner.key" --format flat >/dev/null
cp "$work/flat/manifest.json" "$corpus/manifest/store-flat.json"
cp "$work/nsc/keys/creds/fuzzop/core/a-service.creds" "$creds_seeds/a-service.creds"
cp "$work/nsc/keys/creds/fuzzop/core/b-service.creds" "$creds_seeds/b-service.creds"
cp "$work/nsc/keys/creds/fuzzop/SYS/sys.creds" "$creds_seeds/sys.creds"
# Mark the throwaway seeds as test-only (the creds parser ignores text outside its blocks).
for f in "$creds_seeds"/*.creds; do
  { echo "# TEST ONLY, insecure throwaway fuzz seed: never use (see fuzz/corpus/README.md)"; cat "$f"; } > "$f.tmp" && mv "$f.tmp" "$f"
done

# age: creds encrypted to the TEST ONLY host keys (h1: X25519, h2: ssh-ed25519), and small files.
cp "$s/accounts/core/users/a-service.creds.age" "$corpus/age/creds-to-x25519.age"
cp "$s/accounts/core/users/b-service.creds.age" "$corpus/age/creds-to-ssh.age"
printf 'hello' | age -r "$h1" > "$corpus/age/x25519.age"
printf 'hello' | age -r "$h2" > "$corpus/age/ssh.age"
printf 'hello' | age -a -r "$h1" > "$corpus/age/armored.age"
printf '' | age -r "$h1" -r "$h2" > "$corpus/age/empty-two-recipients.age"

# verify: inputs for the structured mutator (see fuzz_targets/verify.rs); any bytes are valid.
: > "$corpus/verify/empty"
printf '\x01\x00\x05\x00\x00\x00\x10\x00\x00\x00\xff' > "$corpus/verify/flip"
printf '\x00\x07\x03\x00\x04\x00\x00\x00' > "$corpus/verify/manifest-leaf"
printf '\x00\x04\x02\x00' > "$corpus/verify/drop"
printf '\x01\x06\x01\x00\x02\x00' > "$corpus/verify/copy"
find "$corpus" -type f | wc -l
