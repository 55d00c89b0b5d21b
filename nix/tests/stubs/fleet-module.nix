# modules/server.nix evaluated without nixpkgs or the NixOS module system:
# the module function is called with stand-ins for lib and pkgs that record
# what they get (pkgs.writeText keeps its text, runCommand its script), its
# options' defaults become the configuration (plus `overrides`), and the
# mkIf/mkMerge/mkDefault stand-ins are resolved. What comes out is every value
# the evaluation produces, as plain JSON-able data, for nix/tests/fleet.nix
# and the secret scan of nix/tests/run.sh. Not a test file itself (hence
# in stubs/, which nix/tests/run.sh and checks.nix-lib do not run).
{
  store,
  hostName,
  overrides ? { },
}:
let
  stubLib = rec {
    mkOption = o: o;
    mkEnableOption = d: {
      default = false;
      description = d;
    };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    literalMD = text: {
      _type = "literalMD";
      inherit text;
    };
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkMerge = contents: {
      _type = "merge";
      inherit contents;
    };
    mkDefault = content: {
      _type = "override";
      priority = 1000;
      inherit content;
    };
    mkForce = content: {
      _type = "override";
      priority = 50;
      inherit content;
    };
    types = {
      str = "str";
      bool = "bool";
      port = "port";
      path = "path";
      package = "package";
      enum = v: { enum = v; };
      listOf = t: { listOf = t; };
      nullOr = t: { nullOr = t; };
      addCheck = t: _check: t;
    };
    concatStringsSep = builtins.concatStringsSep;
    concatStrings = builtins.concatStringsSep "";
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalAttrs = c: a: if c then a else { };
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (n: {
          name = n;
          value = f n;
        }) names
      );
    mapAttrsToList = f: a: map (n: f n a.${n}) (builtins.attrNames a);
    getExe = p: "/nix/store/stub-${p.name}/bin/${p.name}";
    getExe' = p: n: "/nix/store/stub-${p.name}/bin/${n}";
  };
  drv =
    name: extra:
    {
      _drv = name;
      inherit name;
      outPath = "/nix/store/stub-${name}";
    }
    // extra;
  stubPkgs = {
    formats.json = _: {
      type = "json";
      generate = name: value: drv name { json = builtins.toJSON value; };
    };
    # The text is kept in the output path too, so that it shows in the
    # runCommand script (the build-time check) that interpolates it.
    writeText =
      name: text:
      drv name {
        inherit text;
        outPath = "/nix/store/stub-${name}-text:${text}";
      };
    runCommand = name: _env: script: drv name { inherit script; };
    writeShellApplication = a: drv a.name { inherit (a) text; };
    age = drv "age" { };
    coreutils = drv "coreutils" { };
    util-linux = drv "util-linux" { };
    jq = drv "jq" { };
  };

  natsPackage = drv "nats-server" { };
  defaultsOf = opts: builtins.mapAttrs (_: o: if o ? default then o.default else defaultsOf o) opts;

  module = import ../../../modules/server.nix;
  result = module {
    lib = stubLib;
    pkgs = stubPkgs;
    options = { };
    config = {
      networking.hostName = hostName;
      services.openssh.hostKeys = [
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ];
      services.nats = {
        dataDir = "/var/lib/nats";
        package = natsPackage;
        settings = { };
      };
      services.clan-nats.server = cfg;
    };
  };
  cfg = defaultsOf result.options.services.clan-nats.server // { enable = true; inherit store; } // overrides;

  # mkIf/mkMerge/mkDefault/mkForce stand-ins resolved; a false mkIf is null.
  resolve =
    v:
    if builtins.isAttrs v && v ? _type then
      if v._type == "if" then
        (if v.condition then resolve v.content else null)
      else if v._type == "override" then
        resolve v.content
      else if v._type == "merge" then
        map resolve v.contents
      else
        v
    # A stand-in derivation without its outPath, so that builtins.toJSON
    # shows what it holds (text, script) rather than its path.
    else if builtins.isAttrs v && v ? _drv then
      builtins.mapAttrs (_: resolve) (builtins.removeAttrs v [ "outPath" ])
    else if builtins.isAttrs v then
      builtins.mapAttrs (_: resolve) v
    else if builtins.isList v then
      map resolve v
    else
      v;
in
{
  config = resolve result.config;
  inherit cfg;
}
