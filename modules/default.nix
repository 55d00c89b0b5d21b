# Both NixOS modules of clan-nats: services.clan-nats.server (nats-server in
# operator mode) and services.clan-nats.credentials (per-host NATS creds).
# Each does nothing until it is used.
{
  _class = "nixos";
  imports = [
    ./server.nix
    ./credentials.nix
  ];
}
