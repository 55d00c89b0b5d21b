#!/usr/bin/env bash
# The sandbox proxy: runs the project's test binaries the way the check phase
# of nix/package.nix runs them in the Nix build sandbox, so a test that would
# fail there fails here first:
#   - as an unprivileged user (created if absent; the Nix build user is not root),
#   - in a fresh network namespace with only loopback up (no network),
#   - HOME=/homeless-shelter (does not exist), TMPDIR a private build directory,
#   - PATH holding only what the build has: the stdenv tools and the package's
#     nativeCheckInputs (nats-server, age, git, util-linux's script and setsid, ssh-keygen),
#   - leaving out exactly the tests of nix/check-skips.nix, as `checkFlags` does,
#   - without the pinned interop venv (the Nix source has no target/), so a
#     test needing nats-server 2.15.1 that is not skipped fails here too.
# It fails when a name in nix/check-skips.nix matches no test.
# Needs root (to create the user and the namespace). Ends with
# "sandbox proxy: N test binaries passed, M tests left out".
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "sandbox-proxy: run as root (it creates a build user and a network namespace)" >&2; exit 1; }
for tool in unshare setpriv ip useradd nix-instantiate python3 nats-server age git script setsid ssh-keygen; do
  command -v "$tool" >/dev/null 2>&1 || { echo "sandbox-proxy: $tool is missing" >&2; exit 1; }
done

user=clan-nats-nixbld
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /homeless-shelter --shell /usr/sbin/nologin "$user"
fi
uid=$(id -u "$user")
gid=$(id -g "$user")
[ "$uid" -ne 0 ] || { echo "sandbox-proxy: $user is uid 0" >&2; exit 1; }
[ ! -e /homeless-shelter ] || { echo "sandbox-proxy: /homeless-shelter exists; the Nix sandbox has no HOME" >&2; exit 1; }

nix_flags=()
if ! getent group nixbld >/dev/null 2>&1; then nix_flags+=(--option build-users-group ''); fi
mapfile -t skips < <(nix-instantiate "${nix_flags[@]}" --eval --strict --json \
  -E 'map (s: assert s.reason != ""; s.test) (import ./nix/check-skips.nix)' |
  python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))')
[ "${#skips[@]}" -gt 0 ] || { echo "sandbox-proxy: nix/check-skips.nix is empty or unreadable" >&2; exit 1; }

# The test binaries `cargo test` runs (lib, bins, integration tests, examples).
mapfile -t binaries < <(cargo test --locked --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])
' | sort -u)
[ "${#binaries[@]}" -gt 0 ] || { echo "sandbox-proxy: cargo built no test binary" >&2; exit 1; }

work=$(mktemp -d /tmp/clan-nats-sandbox.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
chmod 755 "$work"

# PATH: stdenv (coreutils, findutils, diffutils, sed, grep, awk, tar, gzip,
# bzip2, xz, make, patch, bash) plus nativeCheckInputs, nothing else.
mkdir "$work/bin"
stdenv_tools=(bash sh find xargs diff cmp sed grep egrep fgrep awk gawk tar gzip gunzip bzip2 xz make patch)
mapfile -t coreutils < <(dpkg -L coreutils | grep -E '^/(usr/)?bin/' | xargs -n1 basename)
# util-linux gives script and setsid (tests/cli.rs: a terminal, and none),
# openssh gives ssh-keygen (a passphrase-protected key). util-linux also holds
# mount and unshare, which only the root-only tests (skipped) would use.
native_check_inputs=(nats-server age age-keygen git script setsid ssh-keygen)
for t in "${stdenv_tools[@]}" "${coreutils[@]}" kill "${native_check_inputs[@]}"; do
  p=$(type -P "$t") || continue # a file, not a shell builtin (kill)
  ln -sf "$(readlink -f "$p")" "$work/bin/$t"
done
[ -e "$work/bin/kill" ] || { echo "sandbox-proxy: no kill program (coreutils has one in nixpkgs)" >&2; exit 1; }
for t in mount umount unshare sudo python3 nix ip; do
  [ ! -e "$work/bin/$t" ] || { echo "sandbox-proxy: $t must not be on the sandbox PATH" >&2; exit 1; }
done

# Every skip names exactly one test.
all_tests="$work/tests.txt"
for b in "${binaries[@]}"; do
  "$b" --list --format terse 2>/dev/null | sed -n 's/: test$//p' >>"$all_tests"
done
for s in "${skips[@]}"; do
  n=$(grep -cxF -- "$s" "$all_tests" || true)
  [ "$n" = 1 ] || { echo "sandbox-proxy: nix/check-skips.nix names \"$s\", which matches $n tests" >&2; exit 1; }
done

skip_args=(--exact)
for s in "${skips[@]}"; do skip_args+=("--skip=$s"); done

registry="${CARGO_HOME:-$HOME/.cargo}/registry/src"
case "$registry" in /root/*) ;; *) registry="" ;; esac

passed=0
for b in "${binaries[@]}"; do
  build="$work/build-$(basename "$b")"
  mkdir -m 700 "$build"
  chown "$uid:$gid" "$build"
  echo "== sandbox: $(basename "$b")"
  # Loopback is brought up as root inside the new namespaces, then the build
  # user runs the binary with a clean environment. Debug builds read the age
  # crate's translations (rust-embed) from the cargo registry at run time; a
  # release build (the Nix one) embeds them. So the registry sources, and only
  # they, are shown readable under an empty root home (private mount namespace).
  # shellcheck disable=SC2016 # expanded by the inner sh
  if ! unshare --net --mount --propagation private -- sh -c '
    set -e
    ip link set lo up
    uid=$0 gid=$1 path=$2 build=$3 binary=$4 registry=$5 view=$6
    shift 6
    if [ -d "$registry" ]; then
      mkdir -p "$view"
      mount --bind "$registry" "$view"
      mount -t tmpfs -o mode=0755 root-home /root
      mkdir -p "$registry"
      mount --bind "$view" "$registry"
    fi
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- \
      env -i HOME=/homeless-shelter PATH="$path" TMPDIR="$build" TMP="$build" TEMP="$build" TEMPDIR="$build" \
        NIX_BUILD_TOP="$build" USER=nixbld LANG=C.UTF-8 RUST_BACKTRACE=1 \
        CLAN_NATS_INTEROP_VENV=/nonexistent/interop-venv "$binary" "$@"
  ' "$uid" "$gid" "$work/bin" "$build" "$b" "$registry" "$work/registry" "${skip_args[@]}" --test-threads=2; then
    echo "sandbox-proxy: $(basename "$b") failed as the Nix check phase would run it" >&2
    exit 1
  fi
  passed=$((passed + 1))
done
echo "sandbox proxy: $passed test binaries passed, ${#skips[@]} tests left out (nix/check-skips.nix)"
