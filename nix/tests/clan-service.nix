# Tests of the clan service module (modules/clan) without clan-core or
# nixpkgs: its interfaces are evaluated with a small stand-in `lib` that
# records what mkOption gets, and each role's perInstance is called with the
# arguments clan-core passes.
let
  defaults = import ../defaults.nix;
  stubLib = {
    mkOption = option: option;
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
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
      nullOr = type: { nullOr = type; };
      submodule = m: { submodule = m; };
    };
  };

  service = import ../../modules/clan { };
  interface = role: (service.roles.${role}.interface { lib = stubLib; }).options;
  instanceWith =
    roles: role: settings:
    service.roles.${role}.perInstance {
      inherit settings roles;
      instanceName = "nats";
      machine = {
        name = "core1";
        roles = [ role ];
      };
    };
  instance = instanceWith { };
  baseNames = map (p: baseNameOf (toString p));

  serverInstance = instance "server" {
    store = "/flake/nats-store";
    resolver = "full";
    jetstream = true;
    port = 4223;
    openFirewall = true;
    firewallInterfaces = [ "zt0" ];
    tls = { };
    settings.max_payload = 1;
  };
  serverModule = serverInstance.nixosModule {
    config.services.nats.dataDir = "/var/lib/nats";
    lib = stubLib;
  };
  memoryServer =
    (instance "server" {
      store = "/flake/nats-store";
      resolver = "memory";
      jetstream = false;
      port = 4222;
      openFirewall = false;
      firewallInterfaces = [ ];
      tls = { };
      settings = { };
    }).nixosModule
      {
        config.services.nats.dataDir = "/var/lib/nats";
        lib = stubLib;
      };
  clientInstance = instance "client" {
    store = "/flake/nats-store";
    domain = null;
    services.person-service = [ "person-service" ];
  };
  # Two server machines in the instance, one with TLS.
  clientOfTwo =
    (instanceWith {
      server.machines = {
        nats1.settings.port = 4222;
        nats2.settings = {
          port = 4223;
          tls.certFile = "/var/lib/acme/nats2/cert.pem";
        };
      };
    } "client" {
      store = "/flake/nats-store";
      domain = "clan";
      services = { };
    }).nixosModule
      { lib = stubLib; };
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
      firewallInterfaces = (interface "server").firewallInterfaces.default;
    };
    expected = {
      names = [
        "firewallInterfaces"
        "jetstream"
        "openFirewall"
        "port"
        "resolver"
        "settings"
        "store"
        "tls"
      ];
      firewallInterfaces = [ ];
      inherit (defaults) resolver port;
      resolvers = [
        "memory"
        "full"
      ];
      jetstream = false;
      # Closed unless an interface (the clan mesh) is given.
      openFirewall = false;
    };
  };

  "client settings: the store and service -> units" = {
    expr = {
      names = builtins.attrNames (interface "client");
      services = (interface "client").services.type;
    };
    expected = {
      names = [
        "domain"
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
      instances = serverModule.services.clan-nats.clanInstances;
    };
    expected = {
      imports = [
        "server.nix"
        "instances.nix"
      ];
      server = {
        enable = true;
        serverName = {
          _type = "override";
          priority = 1000;
          content = "core1";
        };
        hostName = {
          _type = "override";
          priority = 1000;
          content = "core1";
        };
        store = "/flake/nats-store";
        resolver = "full";
        jetstream = true;
        port = 4223;
        openFirewall = true;
        firewallInterfaces = [ "zt0" ];
        tls = { };
        settings.max_payload = 1;
      };
      instances.server = [ "nats" ];
    };
  };

  "server role: clan.core.state holds the data dir with JetStream or the full resolver, else nothing" = {
    expr = [
      serverModule.clan.core.state.clan-nats
      memoryServer.clan.core.state.clan-nats.condition
    ];
    expected = [
      {
        _type = "if";
        condition = true;
        content.folders = [ "/var/lib/nats" ];
      }
      false
    ];
  };

  "client role: NATS URLs of the instance's server machines, each with its port and scheme" = {
    expr = clientOfTwo.services.clan-nats.credentials.servers;
    expected = {
      _type = "override";
      priority = 1000;
      content = [
        "nats://nats1.clan:4222"
        "tls://nats2.clan:4223"
      ];
    };
  };

  "client role: the machine name is the manifest host, services become users" = {
    expr = {
      imports = baseNames clientModule.imports;
      inherit (clientModule.services.clan-nats.credentials) store hostName users;
    };
    expected = {
      imports = [
        "credentials.nix"
        "instances.nix"
      ];
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
