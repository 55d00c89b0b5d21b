//! The store on disk: its layout ([`layout`]) and atomic reads and writes of the
//! whole tree ([`tree`]).

pub mod journal;
pub mod layout;
pub mod pin;
pub mod scan;
pub mod tree;

pub use journal::Changes;
pub use layout::{key_path, Format, Layout, MANIFEST, SERVER_CONF, SERVER_JSON};
pub use tree::{
    foreign_entries, has_store_entries, lock, read_root, read_tree, write_tree, Lock, StoreError, Tree, WriteReport,
};
