# Which instances of the clan-nats clan service a machine is in, per role:
# every perInstance module adds its instance name, and the module system
# merges the lists (this file is imported once, by path). Two instances would
# both set services.clan-nats.*.store: that is refused with a clear message.
{ config, lib, ... }:
let
  cfg = config.services.clan-nats.clanInstances;
  one = role: {
    assertion = lib.length cfg.${role} <= 1;
    message = "clan-nats: this machine is in the ${role} role of ${toString (lib.length cfg.${role})} instances (${lib.concatStringsSep ", " cfg.${role}}); one store per machine: use one instance of the clan-nats service per machine and role.";
  };
in
{
  _class = "nixos";
  options.services.clan-nats.clanInstances = lib.genAttrs [ "server" "client" ] (
    role:
    lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      internal = true;
      description = "Instances of the clan-nats clan service whose ${role} role this machine has.";
    }
  );
  config.assertions = [
    (one "server")
    (one "client")
  ];
}
