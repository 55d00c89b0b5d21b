# checks.format: every .nix file is formatted with nixfmt (RFC 166 style, the
# formatter of `nix fmt`). Fix with `nix fmt`.
{ pkgs }:
let
  inherit (pkgs) lib;
  src = lib.fileset.toSource {
    root = ../..;
    fileset = lib.fileset.fileFilter (file: file.hasExt "nix") ../..;
  };
in
pkgs.runCommand "clan-nats-nixfmt" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
  cd ${src}
  files=$(find . -name '*.nix' | sort)
  nixfmt --check $files
  echo "nixfmt: $(echo "$files" | wc -l) passed, 0 failed"
  touch $out
''
