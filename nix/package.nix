# The clan-nats CLI. `cargo test` runs in the build: the integration tests
# start a real nats-server on 127.0.0.1 and decrypt with the reference `age`,
# both of which work in the build sandbox (it has a loopback interface).
# The build runs as an unprivileged user without network, so the tests that
# need root or a pinned nats-server version are left out by name, each with
# its reason, in ./check-skips.nix (README: "What the Nix build leaves out").
# .ci/sandbox-proxy.sh runs the rest the same way and must pass.
{
  lib,
  rustPlatform,
  nats-server,
  age,
  gitMinimal,
}:
let
  skips = import ./check-skips.nix;
  cargoToml = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).package;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.name;
  inherit (cargoToml) version;

  # The crate only: a change to the Nix files, docs or CI does not rebuild it.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests
      ../examples
      (lib.fileset.maybeMissing ../benches)
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeCheckInputs = [
    nats-server
    age
    # tests/daily.rs: files a user keeps in the store (git) survive every write.
    gitMinimal
  ];
  # `--exact`: a skip names one test, not every test containing the string.
  checkFlags = [ "--exact" ] ++ map (s: "--skip=${s.test}") skips;
  # tests/server.rs listens on 127.0.0.1; the darwin sandbox allows it only so.
  __darwinAllowLocalNetworking = true;

  meta = {
    inherit (cargoToml) description;
    homepage = cargoToml.repository;
    license = [
      lib.licenses.mit
      lib.licenses.asl20
    ];
    mainProgram = "clan-nats";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  };
}
