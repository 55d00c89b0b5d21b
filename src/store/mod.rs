//! The store on disk: its layout ([`layout`]) and atomic reads and writes of the
//! whole tree ([`tree`]).

pub mod layout;
pub mod pin;
pub mod tree;

pub use layout::{key_path, Format, Layout, MANIFEST, SERVER_CONF, SERVER_JSON};
pub use tree::{read_tree, write_tree, Tree, WriteReport};
