#!/usr/bin/env bash
# The config validation proxy: for each resolver mode services.clan-nats.server
# offers (memory, full; each without and with JetStream, and with client TLS),
# write the nats-server settings the module produces and check them the way
# the module's build step does: nix/validate-config.sh, run as an unprivileged
# user with only nats-server, jq and the stdenv tools on PATH, in an empty
# temporary directory, as in the Nix build sandbox.
#
# It also runs what nixpkgs' own `validateConfig` runs (`nats-server -t` on the
# file as deployed) and expects it to FAIL for the full resolver (it creates
# /var/lib/nats/jwt) and to pass for memory: the reason the module turns that
# check off for "full" and validates a copy instead.
#
# The settings: nix/server-settings.nix (builtins only, what the module merges
# into services.nats.settings) plus the keys nixpkgs' services.nats adds
# itself (server_name, port, jetstream.store_dir = dataDir when enabled;
# nixos/modules/services/networking/nats.nix). Needs root (to switch user).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "validate-proxy: run as root (it runs the checks as an unprivileged user)" >&2; exit 1; }
for tool in nats-server jq nix-instantiate setpriv useradd; do
  command -v "$tool" >/dev/null 2>&1 || { echo "validate-proxy: $tool is missing" >&2; exit 1; }
done
user=clan-nats-nixbld
id -u "$user" >/dev/null 2>&1 ||
  useradd --system --no-create-home --home-dir /homeless-shelter --shell /usr/sbin/nologin "$user"
uid=$(id -u "$user")
gid=$(id -g "$user")
[ ! -e /var/lib/nats ] || { echo "validate-proxy: /var/lib/nats exists here; the check would not be the sandbox's" >&2; exit 1; }

nix_flags=()
if ! getent group nixbld >/dev/null 2>&1; then nix_flags+=(--option build-users-group ''); fi

work=$(mktemp -d /tmp/clan-nats-validate-proxy.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir "$work/bin"
for t in nats-server jq bash sh cat cp mkdir mktemp rm sed realpath; do ln -s "$(readlink -f "$(type -P "$t")")" "$work/bin/$t"; done

# settings(resolver, jetstream, tls) as the module produces them, as JSON.
settings() {
  # shellcheck disable=SC2016 # Nix interpolation
  nix-instantiate "${nix_flags[@]}" --eval --strict --json --arg resolver "\"$1\"" --arg jetstream "$2" --arg tls "$3" -E '
    { resolver, jetstream, tls }:
    let
      helpers = import ./nix;
      serverJson = helpers.store.serverJson ./nix/tests/fixtures/store;
      dataDir = helpers.defaults.dataDir;
      credDir = "/run/credentials/nats.service";
      # modules/server.nix
      ours = helpers.serverSettings.merge
        (helpers.serverSettings.settings { inherit serverJson resolver dataDir; })
        ({ jetstream.enabled = jetstream; }
          // (if tls then { tls = { cert_file = "${credDir}/tls.crt"; key_file = "${credDir}/tls.key"; }; } else { }));
      # nixpkgs services.nats
      nixpkgs = {
        server_name = "nats1";
        port = helpers.defaults.port;
        jetstream = if jetstream then { store_dir = dataDir; } else { };
      };
    in
    helpers.serverSettings.merge nixpkgs ours'
}

as_build_user() { # dir, command...
  local dir=$1
  shift
  (cd "$dir" && setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs -- \
    env -i HOME=/homeless-shelter PATH="$work/bin" TMPDIR="$dir" "$@")
}

checked=0
for resolver in memory full; do
  for jetstream in false true; do
    for tls in false true; do
      name="$resolver-jetstream=$jetstream-tls=$tls"
      dir="$work/$name"
      mkdir -m 700 "$dir"
      settings "$resolver" "$jetstream" "$tls" >"$dir/nats.conf"
      chown -R "$uid:$gid" "$dir"
      if ! as_build_user "$dir" bash "$PWD/nix/validate-config.sh" "$dir/nats.conf" "$dir/out" >"$dir/log" 2>&1; then
        cat "$dir/log" >&2
        echo "validate-proxy: $name: the module's check fails" >&2
        exit 1
      fi
      cmp -s "$dir/nats.conf" "$dir/out" || { echo "validate-proxy: $name: the checked file differs from the deployed one" >&2; exit 1; }
      echo "ok   $name: nix/validate-config.sh passes as $user"
      checked=$((checked + 1))
    done
  done
  # nixpkgs' validateConfig on the deployed file (no TLS: its files exist only at run time).
  dir="$work/nixpkgs-$resolver"
  mkdir -m 700 "$dir"
  settings "$resolver" true false >"$dir/nats.conf"
  chown -R "$uid:$gid" "$dir"
  if as_build_user "$dir" nats-server --config "$dir/nats.conf" -t >"$dir/log" 2>&1; then
    [ "$resolver" = memory ] || { echo "validate-proxy: nixpkgs' check passed for $resolver; expected mkdir to fail" >&2; exit 1; }
    echo "ok   nixpkgs' validateConfig passes for memory (left on)"
  else
    if [ "$resolver" = full ] && grep -q 'permission denied' "$dir/log"; then
      echo "ok   nixpkgs' validateConfig fails for full ($(grep -o 'mkdir[^"]*permission denied' "$dir/log" | head -1)): the module turns it off"
    else
      cat "$dir/log" >&2
      echo "validate-proxy: nixpkgs' check of $resolver failed unexpectedly" >&2
      exit 1
    fi
  fi
done
# Fleet stores: each per-host conf of the TEST-ONLY fleet fixture, as the
# module installs it (the store's conf, then jetstream and settings appended),
# with and without JetStream and a tls block, through nix/validate-fleet-config.sh
# (dummy route credential, relative resolver dir in the build directory).
for conf in nix/tests/fixtures/fleet/store/server/*/nats-server.conf; do
  host=$(basename "$(dirname "$conf")")
  for jetstream in false true; do
    for tls in false true; do
      name="fleet-$host-jetstream=$jetstream-tls=$tls"
      dir="$work/$name"
      mkdir -m 700 "$dir"
      {
        cat "$conf"
        if [ "$tls" = true ]; then printf 'tls {\n  cert_file: "/run/certs/nats.pem"\n  key_file: "/run/certs/nats-key.pem"\n  ca_file: "/run/certs/ca.pem"\n  verify: true\n}\n'; fi
        printf '\n# Added by services.clan-nats.server (jetstream, settings):\n'
        if [ "$jetstream" = true ]; then echo 'jetstream: {"enabled":true,"store_dir":"/var/lib/nats"}'; else echo 'jetstream: {"enabled":false}'; fi
      } >"$dir/nats.conf"
      chown -R "$uid:$gid" "$dir"
      if ! as_build_user "$dir" bash "$PWD/nix/validate-fleet-config.sh" "$dir/nats.conf" "$dir/out" >"$dir/log" 2>&1; then
        cat "$dir/log" >&2
        echo "validate-proxy: $name: the module's check fails" >&2
        exit 1
      fi
      cmp -s "$dir/nats.conf" "$dir/out" || { echo "validate-proxy: $name: the checked file differs from the deployed one" >&2; exit 1; }
      echo "ok   $name: nix/validate-fleet-config.sh passes as $user"
      checked=$((checked + 1))
    done
  done
done
echo "validate proxy: $checked configurations valid"
