# The clan-nats CLI. `cargo test` runs in the build: the integration tests
# start a real nats-server on 127.0.0.1 and decrypt with the reference `age`,
# both of which work in the build sandbox (it has a loopback interface), so no
# test is skipped.
{
  lib,
  rustPlatform,
  nats-server,
  age,
}:
let
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
  ];
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
