# Detects nkey seeds in text, so checks can prove that no secret reached a
# value bound for the Nix store. builtins only.
#
# A seed is "S" + the key kind (O operator, A account, U user) + 56 base32
# characters (tests/common/mod.rs `contains_seed` looks for the same shape).
# builtins.split scans without the deep recursion that `.*` patterns in
# builtins.match hit on long strings.
rec {
  pattern = "S[OAU][A-Z2-7]{56}";

  # How many seed-shaped substrings `text` has. (Never returns them: a
  # message that quotes a found seed would leak it into a build log.)
  count = text: builtins.length (builtins.filter builtins.isList (builtins.split pattern text));

  containsSeed = text: count text != 0;
}
