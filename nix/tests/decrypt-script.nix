# Tests of nix/decrypt-script.nix on the text it renders. nix/tests/run.sh
# also runs the rendered script against the real `age` and shellchecks it.
let
  render = import ../decrypt-script.nix;
  linesOf = text: builtins.filter builtins.isString (builtins.split "\n" text);
  has = text: line: builtins.elem line (linesOf text);

  script = render {
    runDir = "/run/clan-nats";
    identityPaths = [
      "/var/lib/sops-nix/key.txt"
      "/etc/ssh/ssh_host_ed25519_key"
    ];
    creds = [
      {
        name = "person-service";
        file = "/nix/store/0000000000000000000000000000000-person-service.creds.age";
      }
      {
        name = "it's";
        file = "/tmp/a b.age";
      }
    ];
  };
  unmounted = render {
    runDir = "/tmp/x";
    identityPaths = [ "/k" ];
    creds = [ ];
    mountRamfs = false;
  };
in
import ./harness.nix {
  "a strict umask before anything is written" = {
    expr = builtins.elemAt (linesOf script) 1;
    expected = "umask 077";
  };

  "a root-only ramfs on the run directory" = {
    expr = map (has script) [
      "dir='/run/clan-nats'"
      "if ! mountpoint -q \"$dir\"; then"
      "  mount -t ramfs -o nodev,nosuid,noexec,mode=0700 clan-nats \"$dir\""
      "chmod 0700 \"$dir\""
    ];
    expected = [
      true
      true
      true
      true
    ];
  };

  "no mount when mountRamfs is false" = {
    expr = builtins.any (l: builtins.match ".*mount.*" l != null) (linesOf unmounted);
    expected = false;
  };

  "identities are tried in order, unreadable ones skipped" = {
    expr = map (has script) [
      "candidates=('/var/lib/sops-nix/key.txt' '/etc/ssh/ssh_host_ed25519_key')"
      "  if [ -r \"$identity\" ]; then"
      "    identities+=(-i \"$identity\")"
    ];
    expected = [
      true
      true
      true
    ];
  };

  "decrypt to .tmp, chmod 0400, then rename" = {
    expr = map (has script) [
      "  if age --decrypt \"\${identities[@]}\" -o \"$target.tmp\" \"$source\"; then"
      "    chmod 0400 \"$target.tmp\""
      "    mv -f \"$target.tmp\" \"$target\""
    ];
    expected = [
      true
      true
      true
    ];
  };

  "one decrypt call per user, names and files shell-quoted" = {
    expr = map (has script) [
      "decrypt 'person-service' '/nix/store/0000000000000000000000000000000-person-service.creds.age'"
      "decrypt 'it'\\''s' '/tmp/a b.age'"
    ];
    expected = [
      true
      true
    ];
  };

  "everything but the configured creds is pruned" = {
    expr = has script "    'person-service.creds' | 'it'\\''s.creds') ;;";
    expected = true;
  };

  "no users: no decrypt function, everything pruned" = {
    expr = {
      function = has unmounted "decrypt() {";
      keep = has unmounted "    '') ;;";
      # The last user removed: prune only, even where no identity is readable.
      identities = has unmounted "candidates=(";
    };
    expected = {
      function = false;
      keep = true;
      identities = false;
    };
  };

  "the exit status says whether every file decrypted" = {
    expr = map (t: builtins.elemAt (linesOf t) (builtins.length (linesOf t) - 2)) [
      script
      unmounted
    ];
    expected = [
      "exit \"$failed\""
      "exit \"$failed\""
    ];
  };
}
