# TEST ONLY, insecure, never do this: it installs a committed private key
# (tests/fixtures/insecure/core1.ssh_host_ed25519_key, public to everyone) as
# this machine's ssh host key, so the VM test's client can play a host whose
# recipient is known before the test runs. Real machines keep their own key.
{
  system.activationScripts.clan-nats-insecure-test-host-key.text = ''
    mkdir -p /etc/ssh
    (
      umask 077
      cp ${../../tests/fixtures/insecure/core1.ssh_host_ed25519_key} /etc/ssh/ssh_host_ed25519_key
    )
    (
      umask 022
      cp ${../../tests/fixtures/insecure/core1.ssh_host_ed25519_key.pub} /etc/ssh/ssh_host_ed25519_key.pub
    )
  '';

  # Ordered before the credentials step of activation. (The decryption itself
  # runs in clan-nats-credentials.service, after activation.)
  system.activationScripts.clan-nats-credentials.deps = [ "clan-nats-insecure-test-host-key" ];
}
