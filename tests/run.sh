#!/usr/bin/env bash
# Runs every test of clan-nats: unit tests, the real nats-server and age
# interop tests, and (when present) the Nix helper tests.
# Installs what the tests need when it is missing (Debian/Ubuntu: apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
command -v age >/dev/null 2>&1 || need+=(age)
if [ -d nix ] && ! command -v nix-instantiate >/dev/null 2>&1; then need+=(nix-bin); fi
if [ "${#need[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "tests/run.sh: installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
  else
    echo "tests/run.sh: missing ${need[*]}; install them (or use 'nix develop')" >&2
    exit 1
  fi
fi

cargo test --locked --all-targets

if [ -x nix/tests/run.sh ]; then
  nix/tests/run.sh
fi
