#!/usr/bin/env bash
# Crash safety, the long series: SIGKILL `clan-nats generate` and `rotate` at
# random moments, N times (default 200), and check the store after each kill:
#   - `verify` passes (with --identity on every 10th round: every secret decrypts);
#   - the manifest is the one from before the run or a new one, never a mix
#     (verify checks every file's sha256 against it);
#   - a killed first generate leaves no DIR at all, or a complete store.
# The next run removes what a killed one left beside DIR; the last check is
# that nothing is left. Short forms run in CI: tests/faults.rs and the rotate
# series in tests/reconcile.rs.
#
# Usage: benches/faults.sh [N] (release build; a summary line at the end:
# "faults: N passed, M failed"; exit 1 if any failed).
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
cargo build --release -q --bin clan-nats || exit 1
bin="$PWD/target/release/clan-nats"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 8 accounts x 40 services: a run long enough to be hit in every phase.
python3 - "$work/big.json" <<'EOF'
import json, sys
units = [{"name": f"U{i}", "nats_account_name": f"u{i}"} for i in range(8)]
people = [{"name": f"svc{i}-service", "organizational_unit": f"U{i % 8}", "role": "Service"} for i in range(320)]
hosts = [{"name": "h1", "age_recipient": "age1ckg87dsh8dslhxm0p0g3vu3ykr2peggagrnguj6v0mwswj4pyasqwuztah",
          "services": [p["name"] for p in people[::3]]}]  # TEST ONLY key of tests/fixtures/insecure/dev1.agekey
json.dump({"organization": {"name": "faults"}, "organizational_units": units, "service_people": people, "hosts": hosts},
          open(sys.argv[1], "w"))
EOF
config="$work/big.json"
# This run's trust pins (never the home directory's).
export CLAN_NATS_PINS="$work/pins.json"
store="$work/store"
key="$work/owner.key"
"$bin" generate --config "$config" --out "$store" --identity "$key" --new-identity >/dev/null || exit 1

ms() { date +%s%3N; }
# How long each kind of run takes, to spread the kills over it (and a bit past it).
t0=$(ms); "$bin" generate --config "$config" --out "$work/probe" --identity "$work/probe.key" --new-identity >/dev/null; t1=$(ms)
gen_ms=$((t1 - t0))
cp -a "$store" "$work/probe2"
# A copy changed on its own is a fork of the same organization: give it pins of its own.
cp "$CLAN_NATS_PINS" "$work/probe-pins.json"
t0=$(ms); CLAN_NATS_PINS="$work/probe-pins.json" "$bin" rotate account u3 --config "$config" --out "$work/probe2" --identity "$key" >/dev/null; t1=$(ms)
rot_ms=$((t1 - t0))
rm -rf "$work/probe" "$work/probe.key" "$work/probe2" "$work/probe-pins.json"
echo "faults: a first generate takes ${gen_ms} ms, a rotation ${rot_ms} ms; $n kills"

passed=0 failed=0 old=0 new=0 absent=0 complete=0
fail() { failed=$((failed + 1)); echo "FAIL round $1: $2" >&2; }
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }

for i in $(seq 1 "$n"); do
  kind=$((RANDOM % 4))
  case $kind in
    0) # a first generate into a new DIR
      dir="$work/fresh$i" k="$work/fresh$i.key"
      args=(generate --config "$config" --out "$dir" --identity "$k" --new-identity) span=$gen_ms ;;
    1) args=(rotate account "u$((RANDOM % 8))" --config "$config" --out "$store" --identity "$key") span=$rot_ms dir=$store k=$key ;;
    2) args=(rotate user "svc$((RANDOM % 320))-service" --config "$config" --out "$store" --identity "$key") span=$rot_ms dir=$store k=$key ;;
    3) args=(rotate operator-signing-key --config "$config" --out "$store" --identity "$key") span=$rot_ms dir=$store k=$key ;;
  esac
  before=$(sha "$dir/manifest.json")
  delay_ms=$((RANDOM % (span * 13 / 10 + 1)))
  "$bin" "${args[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  ok=1
  if [ "$kind" = 0 ] && [ ! -e "$dir" ]; then
    absent=$((absent + 1))
  else
    vargs=(verify "$dir")
    [ $((i % 10)) = 0 ] && vargs+=(--identity "$k")
    if ! out=$("$bin" "${vargs[@]}" 2>&1); then ok=0; fail "$i" "${args[*]} killed after ${delay_ms} ms: verify: $out"; fi
    after=$(sha "$dir/manifest.json")
    if [ "$kind" = 0 ]; then complete=$((complete + 1));
    elif [ "$after" = "$before" ]; then old=$((old + 1)); else new=$((new + 1)); fi
  fi
  if [ "$kind" = 0 ]; then
    # The next run completes (the killed one may have left an identity and no store).
    if ! out=$("$bin" generate --config "$config" --out "$dir" --identity "$k" --new-identity 2>&1); then ok=0; fail "$i" "re-run: $out"; fi
    rm -rf "$dir" "$k"
  fi
  [ "$ok" = 1 ] && passed=$((passed + 1))
done

# A last run cleans what the killed runs left beside the store.
"$bin" generate --config "$config" --out "$store" --identity "$key" >/dev/null 2>&1 || fail end "final generate failed"
left=$(find "$work" -maxdepth 1 -name '.*.clan-nats-*' | wc -l)
[ "$left" = 0 ] || fail end "$left temporary directories left behind"
"$bin" verify "$store" --identity "$key" >/dev/null || fail end "final verify failed"
echo "faults: rotations found the old store $old times and the new one $new times; first generates left no store $absent times and a complete one $complete times"
echo "faults: $passed passed, $failed failed"
[ "$failed" = 0 ]
