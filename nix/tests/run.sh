#!/usr/bin/env bash
# The Nix checks that run without nixpkgs (a bare Nix, even Debian's nix-bin):
#   1. `nix-instantiate --parse` of every .nix file of the repository;
#   2. the helper tests nix/tests/*.nix (builtins only; flake.nix and the clan
#      service are evaluated with stand-ins for nixpkgs and lib), and
#      nix/tests/live-store.nix once more on the format-2 fixture store;
#   3. the structure of flake.lock;
#   4. the decrypt script of services.clan-nats.credentials, rendered by
#      nix/decrypt-script.nix, run against the real `age` (and shellcheck);
#   2b. the fleet tests (nix/tests/fleet.nix) with the TEST-ONLY route
#      credential decrypted, a seed scan, and nix/validate-fleet-config.sh on
#      the fixture's per-host confs (with nats-server, when installed);
#   5. the store helpers on a freshly generated store, when a clan-nats binary
#      is at hand (tests/run.sh builds one before calling this).
# What needs nixpkgs (the package, the NixOS modules, the VM test) is checked
# by `nix flake check`. Ends with "nix: N passed, M failed"; exits 1 on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "nix/tests/run.sh: nix-instantiate not found: install Nix (Debian/Ubuntu: apt-get install nix-bin)" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "nix/tests/run.sh: python3 not found: it reads the JSON results and flake.lock" >&2
  exit 1
fi

passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok   $*"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL $*" >&2
}

nix_flags=()
# Debian's nix-bin expects a nixbld group that evaluation does not need.
if ! getent group nixbld >/dev/null 2>&1; then nix_flags+=(--option build-users-group ''); fi
eval_json() { nix-instantiate "${nix_flags[@]}" --eval --strict --json "$@"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- 1. syntax of every .nix file (tracked, and untracked but not ignored)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t nix_files < <(git ls-files --cached --others --exclude-standard -- '*.nix' | sort -u)
else
  mapfile -t nix_files < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' | sort)
fi
for f in "${nix_files[@]}"; do
  [ -e "$f" ] || continue # deleted in the work tree
  if err=$(nix-instantiate "${nix_flags[@]}" --parse "$f" 2>&1 >/dev/null); then
    pass "parse $f"
  else
    fail "parse $f: $err"
  fi
done

# --- 2. helper tests: each file evaluates to { passed = [..]; failed = [..]; }
report() { # file, json
  local file=$1 result=$2 lines
  lines=$(RESULT="$result" FILE="$file" python3 -c '
import json, os
r = json.loads(os.environ["RESULT"])
f = os.environ["FILE"]
for name in r["passed"]:
    print("ok\t%s: %s" % (f, name))
for t in r["failed"]:
    print("FAIL\t%s: %s\n      expected: %s\n      actual:   %s" % (
        f, t["name"], json.dumps(t["expected"]), json.dumps(t["actual"])))
')
  while IFS= read -r line; do
    case "$line" in
      ok$'\t'*) pass "${line#ok$'\t'}" ;;
      FAIL$'\t'*) fail "${line#FAIL$'\t'}" ;;
      *) echo "$line" >&2 ;;
    esac
  done <<<"$lines"
}

run_tests() { # file [argument attrset, for a file that is a function] [label]
  local file=$1 args=${2:-"{ }"} label=${3:-$1} result
  if result=$(eval_json -E "let f = import ./$file; in if builtins.isFunction f then f $args else f" 2>"$work/err"); then
    report "$label" "$result"
  else
    fail "$label does not evaluate: $(grep -v nixbld "$work/err")"
  fi
}

for f in nix/tests/*.nix; do
  case "$(basename "$f")" in harness.nix | fleet.nix) continue ;; esac
  run_tests "$f"
done
# The structural tests again on the format-2 fixture (the same store as
# fixtures/store, split into manifest.json and manifest.d/), so they hold for
# the manifest nix/store.nix assembles, not only for a format-1 file.
run_tests nix/tests/live-store.nix "{ store = ./nix/tests/fixtures/store-v2; }" "nix/tests/live-store.nix (store-v2)"

# --- 2b. the fleet tests (nix/tests/fleet.nix) over the TEST-ONLY fleet
# fixture: the route password and route list, decrypted with the TEST-ONLY
# host key of core1, must appear nowhere in what the evaluation produces, and
# neither may anything shaped like an nkey seed.
fleet_store=nix/tests/fixtures/fleet/store
if command -v age >/dev/null 2>&1; then
  age -d -i tests/fixtures/insecure/core1.ssh_host_ed25519_key "$fleet_store/server/cluster.env.age" >"$work/cluster.env"
  # shellcheck disable=SC1091
  secrets=$( (set -a && . "$work/cluster.env" && python3 -c 'import json, os; print(" ".join(json.dumps(os.environ[k]) for k in ("CLAN_NATS_CLUSTER_PASSWORD", "CLAN_NATS_CLUSTER_ROUTES")))'))
  if [ -z "$secrets" ]; then fail "fleet: cannot read the TEST-ONLY route credential"; fi
  run_tests nix/tests/fleet.nix "{ secrets = [ $secrets ]; }"
else
  run_tests nix/tests/fleet.nix
fi
if produced=$(eval_json -E 'let m = h: (import ./nix/tests/stubs/fleet-module.nix { store = ./'"$fleet_store"'; hostName = h; overrides.firewallInterfaces = [ "wg0" ]; }).config; in map m [ "nats1" "core1" "media1" ]' 2>"$work/err"); then
  if grep -Eq 'S[OAUCNX][A-Z2-7]{56}' <<<"$produced"; then
    fail "fleet: an nkey seed appears in the module evaluation"
  else
    pass "fleet: no nkey seed in the module evaluation of the three fleet servers"
  fi
else
  fail "fleet: the module evaluation failed: $(cat "$work/err")"
fi

# The per-host confs of the fleet fixture pass nix/validate-fleet-config.sh
# (the build-time check of the module) with the real nats-server.
if command -v nats-server >/dev/null 2>&1; then
  for conf in "$fleet_store"/server/*/nats-server.conf; do
    if out=$(bash nix/validate-fleet-config.sh "$conf" "$work/fleet-checked.conf" 2>&1) && cmp -s "$conf" "$work/fleet-checked.conf"; then
      pass "validate-fleet-config.sh: $conf is valid with dummy credentials"
    else
      fail "validate-fleet-config.sh $conf: $out"
    fi
  done
else
  echo "note: no nats-server; the fleet confs are checked by the module's build (nix flake check)"
fi

# --- 3. flake.lock: version 7, root -> nixpkgs, the reference lock node
if out=$(python3 - <<'EOF' 2>&1
import json
lock = json.load(open("flake.lock"))
expected_nixpkgs = {
    "locked": {
        "lastModified": 1783148766,
        "narHash": "sha256-H9+N+GFtsbVC8ZniHliChM7ndizxtqVZs6bnGOLM3WQ=",
        "rev": "a50de1b7d8a586adc18d2395c19de7d6058e6030",
        "type": "tarball",
        "url": "https://releases.nixos.org/nixos/26.05/nixos-26.05.4193.a50de1b7d8a5/nixexprs.tar.xz",
    },
    "original": {"type": "tarball", "url": "https://channels.nixos.org/nixos-26.05/nixexprs.tar.xz"},
}
problems = []
if lock.get("version") != 7: problems.append("version is %r, not 7" % lock.get("version"))
if lock.get("root") != "root": problems.append("root is %r, not \"root\"" % lock.get("root"))
nodes = lock.get("nodes", {})
if sorted(nodes) != ["nixpkgs", "root"]: problems.append("nodes are %r" % sorted(nodes))
if nodes.get("root") != {"inputs": {"nixpkgs": "nixpkgs"}}: problems.append("root node: %r" % nodes.get("root"))
if nodes.get("nixpkgs") != expected_nixpkgs: problems.append("nixpkgs node: %r" % nodes.get("nixpkgs"))
if problems:
    raise SystemExit("; ".join(problems))
EOF
); then
  pass "flake.lock: version 7, root inputs.nixpkgs = \"nixpkgs\", the NixOS 26.05 channel lock"
else
  fail "flake.lock: $out"
fi

# --- 4. the decrypt script, run for real (unprivileged variant: no ramfs mount)
if command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1; then
  insecure=tests/fixtures/insecure
  d="$work/decrypt"
  mkdir -p "$d/run" "$d/in"
  printf 'fake creds for the decrypt test: not a key\n' >"$d/plain"
  age -R "$insecure/core1.ssh_host_ed25519_key.pub" -o "$d/in/mine.creds.age" "$d/plain"
  age-keygen -o "$d/other.key" 2>/dev/null
  age -r "$(age-keygen -y "$d/other.key")" -o "$d/in/other.creds.age" "$d/plain"
  cp "$insecure/core1.ssh_host_ed25519_key" "$d/host.key"
  chmod 0600 "$d/host.key"
  render() { # identities (nix list) creds (nix list) -> script path
    eval_json -E "import ./nix/decrypt-script.nix { runDir = \"$d/run\"; identityPaths = $1; creds = $2; mountRamfs = false; }" 2>/dev/null |
      python3 -c 'import json, sys; print("#!/usr/bin/env bash\nset -o errexit -o nounset -o pipefail\n" + json.load(sys.stdin), end="")' >"$d/script.sh"
    echo "$d/script.sh"
  }
  mine="{ name = \"person-service\"; file = \"$d/in/mine.creds.age\"; }"
  other="{ name = \"audio-service\"; file = \"$d/in/other.creds.age\"; }"

  touch "$d/run/stale.creds" "$d/run/person-service.creds.tmp"
  script=$(render "[ \"$d/missing.key\" \"$d/host.key\" ]" "[ $mine ]")
  if log=$(bash "$script" 2>&1) &&
    cmp -s "$d/plain" "$d/run/person-service.creds" &&
    [ "$(stat -c %a "$d/run/person-service.creds")" = 400 ] &&
    [ "$(stat -c %a "$d/run")" = 700 ] &&
    [ "$(ls "$d/run")" = person-service.creds ]; then
    pass "decrypt script: skips a missing identity, writes 0400 creds in a 0700 dir, prunes the rest"
  else
    fail "decrypt script (good case): $log; run dir: $(ls -la "$d/run")"
  fi

  if bash "$script" >/dev/null 2>&1 && cmp -s "$d/plain" "$d/run/person-service.creds"; then
    pass "decrypt script: a second run replaces the 0400 file in place"
  else
    fail "decrypt script: the second run failed"
  fi

  script=$(render "[ \"$d/host.key\" ]" "[ $mine $other ]")
  if log=$(bash "$script" 2>&1); then
    fail "decrypt script: a file for another recipient must fail the run: $log"
  elif [ -e "$d/run/audio-service.creds" ] || ! cmp -s "$d/plain" "$d/run/person-service.creds" ||
    ! grep -q "audio-service: cannot decrypt" <<<"$log"; then
    fail "decrypt script (foreign file): $log; run dir: $(ls "$d/run")"
  else
    pass "decrypt script: a file it cannot decrypt fails the run, leaves no file, the others are done"
  fi

  script=$(render "[ \"$d/missing.key\" ]" "[ $mine ]")
  if log=$(bash "$script" 2>&1); then
    fail "decrypt script: no readable identity must fail"
  elif grep -q "no readable identity among: $d/missing.key" <<<"$log"; then
    pass "decrypt script: no readable identity fails loudly, naming the paths"
  else
    fail "decrypt script (no identity): $log"
  fi

  # The route credential of a fleet server: server/cluster.env.age of the
  # TEST-ONLY fleet fixture, decrypted with core1's TEST-ONLY host key to
  # <runDir>/cluster.env, as clan-nats-cluster-env.service does.
  mkdir -p "$d/cluster"
  eval_json -E "import ./nix/decrypt-script.nix { runDir = \"$d/cluster\"; identityPaths = [ \"$d/host.key\" ]; suffix = \".env\"; creds = [ { name = \"cluster\"; file = \"$PWD/nix/tests/fixtures/fleet/store/server/cluster.env.age\"; } ]; mountRamfs = false; }" 2>/dev/null |
    python3 -c 'import json, sys; print("#!/usr/bin/env bash\nset -o errexit -o nounset -o pipefail\n" + json.load(sys.stdin), end="")' >"$d/cluster.sh"
  # shellcheck disable=SC1091
  if log=$(bash "$d/cluster.sh" 2>&1) &&
    [ "$(stat -c %a "$d/cluster/cluster.env")" = 400 ] &&
    [ "$(ls "$d/cluster")" = cluster.env ] &&
    (set -a && . "$d/cluster/cluster.env" && [ -n "$CLAN_NATS_CLUSTER_PASSWORD" ] && [ "${CLAN_NATS_CLUSTER_ROUTES#\[}" != "$CLAN_NATS_CLUSTER_ROUTES" ]); then
    pass "decrypt script: the fleet route credential, decrypted with a server's host key, is a 0400 environment file"
  else
    fail "decrypt script (fleet route credential): $log; run dir: $(ls -la "$d/cluster")"
  fi

  if command -v shellcheck >/dev/null 2>&1; then
    for variant in "two users:[ $mine $other ]" "no user:[ ]"; do
      script=$(render "[ \"$d/host.key\" ]" "${variant#*:}")
      if out=$(shellcheck "$script" 2>&1); then
        pass "decrypt script: shellcheck clean (${variant%%:*})"
      else
        fail "decrypt script (${variant%%:*}): shellcheck: $out"
      fi
    done
  else
    echo "note: shellcheck not installed; writeShellApplication runs it in the Nix build"
  fi
else
  fail "decrypt script: age and age-keygen are needed (apt-get install age)"
fi

# --- 5. the helpers on a store generated now, by the current clan-nats
bin=""
for candidate in target/debug/clan-nats target/release/clan-nats; do
  if [ -x "$candidate" ]; then
    bin=$candidate
    break
  fi
done
if [ -z "$bin" ] && command -v clan-nats >/dev/null 2>&1; then bin=$(command -v clan-nats); fi
if [ -n "$bin" ]; then
  if CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS=1 "$bin" generate --config tests/fixtures/insecure/example.json --out "$work/store" --identity "$work/owner.key" --new-identity >"$work/gen.log" 2>&1; then
    run_tests nix/tests/live-store.nix "{ store = $work/store; }"
  else
    fail "clan-nats generate for the live-store tests: $(cat "$work/gen.log")"
  fi
else
  echo "note: no clan-nats binary (cargo build); the live-store tests ran on the fixture only"
fi

echo "nix: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
