# checks.vm (nix/checks/vm.nix) must not need import from derivation: its
# stores are committed source paths, readable by a bare evaluation. Evaluated
# here with a stand-in `pkgs` whose builders throw, so a store built by a
# derivation (what the check did before) fails this test. Also checks the two
# TEST ONLY stores: v2 is v1 plus an account and its user, same operator and hosts.
let
  refuse = what: _: throw "checks.vm builds ${what} at evaluation time (import from derivation)";
  stubPkgs = {
    lib = {
      mkForce = content: {
        _type = "override";
        priority = 50;
        inherit content;
      };
      getExe = p: "/stub/${p}";
      concatStringsSep = builtins.concatStringsSep;
    };
    runCommand = refuse "runCommand";
    writeShellScript = name: _text: "/stub/${name}";
    closureInfo = refuse "closureInfo";
    natscli = "natscli";
    nsc = "nsc";
    testers.runNixOSTest = test: test;
  };
  test = import ../checks/vm.nix {
    pkgs = stubPkgs;
    nixosModules = {
      server = "server-module";
      credentials = "credentials-module";
    };
    clan-nats = "clan-nats";
  };
  store = import ../store.nix;
  v1 = test.nodes.server.services.clan-nats.server.store;
  v2 = test.nodes.server.specialisation.accounts-changed.configuration.services.clan-nats.server.store.content;
  users = m: builtins.concatMap (a: map (u: u.name) a.users) m.accounts;
  m1 = store.manifest v1;
  m2 = store.manifest v2;
in
import ./harness.nix {
  "vm: both stores are committed paths, read without building anything" = {
    expr = map builtins.isPath [
      v1
      v2
      test.nodes.client.services.clan-nats.credentials.store
    ];
    expected = [
      true
      true
      true
    ];
  };
  "vm: store-v2 is store-v1 plus the media account and new-service, same operator and hosts" = {
    expr = {
      operator = m1.operator.public_key == m2.operator.public_key;
      added = builtins.filter (u: !(builtins.elem u (users m1))) (users m2);
      hosts = builtins.sort builtins.lessThan (map (h: h.name) m2.hosts);
      # The server's preloaded accounts change: the switch must reload it.
      accounts = map builtins.length [
        (builtins.attrNames (store.serverJson v1).resolver_preload)
        (builtins.attrNames (store.serverJson v2).resolver_preload)
      ];
    };
    expected = {
      operator = true;
      added = [ "new-service" ];
      hosts = [
        "client"
        "server"
      ];
      accounts = [
        2
        3
      ];
    };
  };
}
