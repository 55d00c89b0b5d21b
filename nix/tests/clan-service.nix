# Tests of the clan service module (modules/clan) without clan-core or
# nixpkgs: its interfaces are evaluated with a small stand-in `lib` that
# records what mkOption gets, and each role's perInstance is called with the
# arguments clan-core passes.
let
  defaults = import ../defaults.nix;
  stubLib = {
    mkOption = option: option;
    mkDefault = content: {
      _type = "override";
      priority = 1000;
      inherit content;
    };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    types = {
      path = "path";
      bool = "bool";
      port = "port";
      str = "str";
      anything = "anything";
      enum = values: { enum = values; };
      attrsOf = type: { attrsOf = type; };
      listOf = type: { listOf = type; };
    };
  };

  service = import ../../modules/clan { };
  interface = role: (service.roles.${role}.interface { lib = stubLib; }).options;
  instance =
    role: settings:
    service.roles.${role}.perInstance {
      inherit settings;
      instanceName = "nats";
      machine = {
        name = "core1";
        roles = [ role ];
      };
      roles = { };
    };
  baseNames = map (p: baseNameOf (toString p));

  serverInstance = instance "server" {
    store = "/flake/nats-store";
    resolver = "full";
    jetstream = true;
    port = 4223;
    openFirewall = true;
    settings.max_payload = 1;
  };
  serverModule = serverInstance.nixosModule;
  clientInstance = instance "client" {
    store = "/flake/nats-store";
    services.person-service = [ "person-service" ];
  };
  clientModule = clientInstance.nixosModule { lib = stubLib; };
in
import ./harness.nix {
  "a clan.service named clan-nats, with a readme" = {
    expr = {
      inherit (service) _class;
      inherit (service.manifest) name categories;
      readme = builtins.substring 0 27 service.manifest.readme;
    };
    expected = {
      _class = "clan.service";
      name = "clan-nats";
      categories = [ "Network" ];
      readme = "NATS in operator mode for a";
    };
  };

  "roles: server and client" = {
    expr = builtins.attrNames service.roles;
    expected = [
      "client"
      "server"
    ];
  };

  "server settings mirror services.clan-nats.server, with the same defaults" = {
    expr = {
      names = builtins.attrNames (interface "server");
      resolver = (interface "server").resolver.default;
      resolvers = (interface "server").resolver.type.enum;
      port = (interface "server").port.default;
      jetstream = (interface "server").jetstream.default;
      openFirewall = (interface "server").openFirewall.default;
    };
    expected = {
      names = [
        "jetstream"
        "openFirewall"
        "port"
        "resolver"
        "settings"
        "store"
      ];
      inherit (defaults) resolver port;
      resolvers = [
        "memory"
        "full"
      ];
      jetstream = false;
      openFirewall = true;
    };
  };

  "client settings: the store and service -> units" = {
    expr = {
      names = builtins.attrNames (interface "client");
      services = (interface "client").services.type;
    };
    expected = {
      names = [
        "services"
        "store"
      ];
      services.attrsOf.listOf = "str";
    };
  };

  "server role: imports the server module and enables it with the settings" = {
    expr = {
      imports = baseNames serverModule.imports;
      server = serverModule.services.clan-nats.server;
    };
    expected = {
      imports = [ "server.nix" ];
      server = {
        enable = true;
        store = "/flake/nats-store";
        resolver = "full";
        jetstream = true;
        port = 4223;
        openFirewall = true;
        settings.max_payload = 1;
      };
    };
  };

  "client role: the machine name is the manifest host, services become users" = {
    expr = {
      imports = baseNames clientModule.imports;
      inherit (clientModule.services.clan-nats.credentials) store hostName users;
    };
    expected = {
      imports = [ "credentials.nix" ];
      store = "/flake/nats-store";
      hostName = {
        _type = "override";
        priority = 1000;
        content = "core1";
      };
      users.person-service.units = [ "person-service" ];
    };
  };
}
