//! `verify_tree` over a real store, generated once with the library, then
//! mutated by the input: bytes flipped, inserted or deleted in one file, a file
//! truncated, dropped, added, copied over another, or one JSON leaf of the
//! manifest replaced. Whatever the damage, verify reports problems; it never panics.
#![no_main]

use std::sync::LazyLock;

use camino::Utf8PathBuf;
use clan_nats::ops;
use clan_nats::store::Tree;
use clan_nats::vault::Identity;
use clan_nats::verify::{verify_tree, Report};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Two accounts (one with a child unit), four services on two hosts (one age,
/// one ssh), default and explicit permissions: every kind of file a store has.
const CONFIG: &str = r#"{
  "organization": {"name": "fuzzorg"},
  "organizational_units": [
    {"name": "Core", "nats_account_name": "core"},
    {"name": "Ops", "parent": "Core"},
    {"name": "Media", "nats_limits": {"conn": 10, "jetstream": {"mem_storage": -1, "disk_storage": 1000}}}
  ],
  "service_people": [
    {"name": "a-service", "organizational_unit": "Core", "role": "Service"},
    {"name": "b-service", "organizational_unit": "Ops", "role": "Service",
     "nats_permissions": {"publish": ["b.>"], "subscribe": ["b.* q"], "allow_responses": true, "max_payload": 4096}},
    {"name": "c-service", "organizational_unit": "Media", "role": "Service"},
    {"name": "alice", "organizational_unit": "Media", "role": "Admin"}
  ],
  "hosts": [
    {"name": "h1", "age_recipient": "age1ckg87dsh8dslhxm0p0g3vu3ykr2peggagrnguj6v0mwswj4pyasqwuztah", "services": ["a-service", "c-service"]},
    {"name": "h2", "age_recipient": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOc0M6a3oByIdg0vq8MZFtVrckVLcNJX7KozNhtqKxOp", "nats_server": true, "services": ["b-service", "c-service"]}
  ]
}"#;

struct Base {
    tree: Tree,
    owner: Identity,
    _dir: TempDir,
}

/// A directory removed on drop (the fuzz crate has no tempfile dependency).
struct TempDir(Utf8PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static BASE: LazyLock<Base> = LazyLock::new(|| {
    let dir =
        Utf8PathBuf::from(format!("{}/clan-nats-fuzz-verify-{}", std::env::temp_dir().display(), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = TempDir(dir);
    let config = dir.0.join("fuzz.json");
    std::fs::write(&config, CONFIG).unwrap();
    let (store, key) = (dir.0.join("store"), dir.0.join("owner.key"));
    // What `generate` does, in process: validate, plan, sign, encrypt, governance record, write.
    let mut pins = clan_nats::store::pin::Pins::load(&dir.0.join("pins.json")).unwrap();
    let request = ops::Request {
        config: Some(&config),
        dir: &store,
        identity: &key,
        admins: None,
        rotate: None,
        imported: None,
        action: "generate",
        format: None,
        now: 1_700_000_000,
        pins: &mut pins,
        confirm: &mut |_, _| Ok(false),
        dry_run: false,
        new_identity: true,
        allow_insecure_fixture_keys: true,
        clan_dir: None,
    };
    ops::reconcile(request, None).unwrap();
    let tree = clan_nats::store::read_tree(&store).unwrap();
    let owner = Identity::load(&key).unwrap();
    // The unmutated store is clean, with and without the identity.
    for id in [None, Some(&owner)] {
        let mut r = Report::default();
        verify_tree(&tree, id, None, &mut r);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }
    Base { tree, owner, _dir: dir }
});

#[derive(Debug, Arbitrary)]
enum Op {
    Flip {
        file: u16,
        pos: u32,
        mask: u8,
    },
    Insert {
        file: u16,
        pos: u32,
        bytes: Vec<u8>,
    },
    Delete {
        file: u16,
        pos: u32,
        len: u8,
    },
    Truncate {
        file: u16,
        len: u32,
    },
    Drop {
        file: u16,
    },
    Add {
        path: String,
        bytes: Vec<u8>,
    },
    /// Put file `from`'s content at `to` (a JWT in another's place, …).
    Copy {
        from: u16,
        to: u16,
    },
    /// Replace the `leaf`-th string/number/bool leaf of the manifest JSON.
    ManifestLeaf {
        leaf: u16,
        value: Leaf,
    },
}

#[derive(Debug, Arbitrary)]
enum Leaf {
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
    /// Another file's path, a realistic wrong value.
    Path(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Decrypt every secret too (slower) on one input in four.
    identity: u8,
    ops: Vec<Op>,
}

fn nth_key(tree: &Tree, i: u16) -> Option<String> {
    if tree.is_empty() {
        return None;
    }
    tree.keys().nth(usize::from(i) % tree.len()).cloned()
}

fn count_leaves(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(m) => m.values().map(count_leaves).sum(),
        serde_json::Value::Array(a) => a.iter().map(count_leaves).sum(),
        _ => 1,
    }
}

/// Replace the `n`-th leaf (depth first); returns how many leaves were passed.
fn set_leaf(v: &mut serde_json::Value, n: usize, new: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(m) => set_children(m.values_mut(), n, new),
        serde_json::Value::Array(a) => set_children(a.iter_mut(), n, new),
        leaf => {
            if n == 0 {
                *leaf = new.clone();
            }
            1
        }
    }
}

fn set_children<'v>(
    children: impl Iterator<Item = &'v mut serde_json::Value>,
    n: usize,
    new: &serde_json::Value,
) -> usize {
    let mut passed = 0;
    for c in children {
        if passed > n {
            break;
        }
        passed += set_leaf(c, n - passed.min(n), new);
    }
    passed
}

fn apply(tree: &mut Tree, op: &Op) {
    match op {
        Op::Flip { file, pos, mask } => {
            let Some(k) = nth_key(tree, *file) else { return };
            let b = tree.get_mut(&k).unwrap();
            if !b.is_empty() {
                let i = *pos as usize % b.len();
                b[i] ^= mask.max(&1);
            }
        }
        Op::Insert { file, pos, bytes } => {
            let Some(k) = nth_key(tree, *file) else { return };
            let b = tree.get_mut(&k).unwrap();
            let i = *pos as usize % (b.len() + 1);
            b.splice(i..i, bytes.iter().copied());
        }
        Op::Delete { file, pos, len } => {
            let Some(k) = nth_key(tree, *file) else { return };
            let b = tree.get_mut(&k).unwrap();
            let i = *pos as usize % (b.len() + 1);
            let end = (i + usize::from(*len)).min(b.len());
            b.drain(i..end);
        }
        Op::Truncate { file, len } => {
            let Some(k) = nth_key(tree, *file) else { return };
            let b = tree.get_mut(&k).unwrap();
            let n = *len as usize % (b.len() + 1);
            b.truncate(n);
        }
        Op::Drop { file } => {
            if let Some(k) = nth_key(tree, *file) {
                tree.remove(&k);
            }
        }
        Op::Add { path, bytes } => {
            tree.insert(path.clone(), bytes.clone());
        }
        Op::Copy { from, to } => {
            if let (Some(f), Some(t)) = (nth_key(tree, *from), nth_key(tree, *to)) {
                let bytes = tree[&f].clone();
                tree.insert(t, bytes);
            }
        }
        Op::ManifestLeaf { leaf, value } => {
            let other = match value {
                Leaf::Path(i) => nth_key(tree, *i),
                _ => None,
            };
            let Some(bytes) = tree.get_mut("manifest.json") else { return };
            let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(bytes) else { return };
            let count = count_leaves(&v);
            if count == 0 {
                return;
            }
            let new = match value {
                Leaf::Str(s) => serde_json::Value::from(s.as_str()),
                Leaf::Int(n) => serde_json::Value::from(*n),
                Leaf::Bool(b) => serde_json::Value::from(*b),
                Leaf::Null => serde_json::Value::Null,
                Leaf::Path(_) => serde_json::Value::from(other.unwrap_or_default()),
            };
            set_leaf(&mut v, usize::from(*leaf) % count, &new);
            *bytes = serde_json::to_vec_pretty(&v).unwrap();
        }
    }
}

fuzz_target!(|input: Input| {
    let base = &*BASE;
    let mut tree: Tree = base.tree.clone();
    for op in input.ops.iter().take(16) {
        apply(&mut tree, op);
    }
    let mut r = Report::default();
    verify_tree(&tree, input.identity.is_multiple_of(4).then_some(&base.owner), None, &mut r);
    if tree == base.tree {
        assert!(r.problems.is_empty(), "an unchanged store must verify: {:?}", r.problems);
    }
});
