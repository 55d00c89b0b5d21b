#!/usr/bin/env bash
# Issue 14: the real nsc (2.14.0) and jwtcheck-modern (nats-io/jwt v2.8.1) on
# export-nsc trees of the example and of a config using every permission field.
# Both must report nothing: nsc validates every entity without issues, `describe
# --json` of every account and user equals the JWT we wrote, `list keys --all`
# finds every seed, `generate creds` gives our creds byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
shared="$root/../shared"
nsc="$shared/tools/outside/nsc"
modern="$shared/tools/outside/jwtcheck-modern"
fail() { echo "nsc-check: $*" >&2; exit 1; }
for t in "$nsc" "$modern"; do [ -x "$t" ] || fail "$t is missing (see ../shared/tools/outside/README.md)"; done
(cd "$shared/tools/outside" && sha256sum --quiet -c SHA256SUMS) || fail "outside tools do not match SHA256SUMS"

cargo build --locked -q
bin="$root/target/debug/clan-nats"
work=$(mktemp -d)
plain=$(mktemp -d -p /dev/shm clan-nats-nsc.XXXXXX) # plaintext seeds only on tmpfs
trap 'rm -rf "$work" "$plain"' EXIT
# Nothing of this run lands in $HOME: pins, nsc's config and data dirs.
export CLAN_NATS_PINS="$work/pins.json" NSC_HOME="$work/nsc-home" XDG_CONFIG_HOME="$work/xdg-config" \
  XDG_DATA_HOME="$work/xdg-data" NSC_NO_GIT_IGNORE=1

# The claims of a JWT file, or of `describe --json` on stdin, as sorted JSON.
claims() { python3 -c 'import base64,json,sys
t=open(sys.argv[1]).read().strip() if len(sys.argv)>1 else None
d=json.loads(base64.urlsafe_b64decode(t.split(".")[1]+"==")) if t else json.load(sys.stdin)
print(json.dumps(d,sort_keys=True))' "$@"; }

check() { # name config
  local name=$1 config=$2 dir="$work/$1" tree="$plain/$1"
  CLAN_NATS_ALLOW_INSECURE_FIXTURE_KEYS=1 "$bin" generate --config "$config" --out "$dir" --identity "$work/$name.key" --new-identity >/dev/null
  "$bin" export-nsc --dir "$dir" --identity "$work/$name.key" --to "$tree" >/dev/null 2>&1
  local n=("$nsc" --data-dir "$tree/stores" --keystore-dir "$tree/keys")
  local out blocks clean
  out=$("${n[@]}" validate --all-accounts 2>&1)
  blocks=$(echo "$out" | grep -cE '^\| +(Operator|Account) ' || true)
  clean=$(echo "$out" | grep -c 'No issues found' || true)
  [ "$blocks" -gt 0 ] && [ "$blocks" = "$clean" ] || { echo "$out" >&2; fail "$name: nsc validate found issues"; }
  local op accounts=0 users=0
  op=$(basename "$(find "$tree/stores" -mindepth 1 -maxdepth 1 -type d)")
  [ "$("${n[@]}" describe operator --json 2>/dev/null | claims)" = "$(claims "$tree/stores/$op/$op.jwt")" ] \
    || fail "$name: nsc describe operator differs from our JWT"
  for adir in "$tree/stores/$op/accounts"/*/; do
    local a
    a=$(basename "$adir")
    [ "$("${n[@]}" describe account -n "$a" --json 2>/dev/null | claims)" = "$(claims "$adir/$a.jwt")" ] \
      || fail "$name: nsc describe account $a differs from our JWT"
    accounts=$((accounts + 1))
    for ujwt in "$adir"users/*.jwt; do
      [ -e "$ujwt" ] || continue
      local u
      u=$(basename "$ujwt" .jwt)
      [ "$("${n[@]}" describe user -a "$a" -n "$u" --json 2>/dev/null | claims)" = "$(claims "$ujwt")" ] \
        || fail "$name: nsc describe user $a/$u differs from our JWT"
      rm -f "$plain/nsc.creds"
      "${n[@]}" generate creds -a "$a" -n "$u" --output-file "$plain/nsc.creds" >/dev/null 2>&1
      cmp -s "$plain/nsc.creds" "$tree/keys/creds/$op/$a/$u.creds" || fail "$name: nsc generate creds $a/$u differs from ours"
      users=$((users + 1))
    done
  done
  # Every key is listed and its seed stored ('*' in the last column).
  out=$("${n[@]}" list keys --all 2>&1)
  local rows stored seeds
  rows=$(echo "$out" | grep -cE '^\| +[^ |].* \| [OAU][A-Z2-7]{55} \|' || true)
  stored=$(echo "$out" | grep -cE '^\| +[^ |].* \| [OAU][A-Z2-7]{55} \|.*\| \* +\|$' || true)
  seeds=$(find "$tree/keys/keys" -name '*.nk' | wc -l)
  [ "$rows" -gt 0 ] && [ "$rows" = "$stored" ] && [ "$rows" = "$seeds" ] \
    || { echo "$out" >&2; fail "$name: nsc list keys: $rows keys, $stored stored, $seeds seeds"; }
  for target in "$dir/nsc/stores" "$tree"; do
    out=$("$modern" "$target" 2>&1) || { echo "$out" >&2; fail "$name: jwtcheck-modern failed on $target"; }
    echo "$out" | tail -1 | grep -q ' 0 error(s), 0 warning(s)$' || { echo "$out" >&2; fail "$name: jwtcheck-modern reports on $target"; }
  done
  echo "nsc-check $name: nsc validate clean ($clean entities), describe --json = our JWTs ($accounts accounts, $users users), creds identical, $rows keys stored; jwtcheck-modern clean"
}
check example tests/fixtures/insecure/example.json
check every-field tests/fixtures/perms/every-field.json
