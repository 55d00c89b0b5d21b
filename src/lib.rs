//! clan-nats: declarative NATS decentralized auth for clan/NixOS fleets.
//!
//! Data flows one way: [`config`] (schema, validation) → [`plan`] (mapping rules)
//! → [`generate`] (reconcile with the existing store, sign, encrypt) →
//! [`store`] (nsc layout, atomic write). [`verify`] checks a written store.

pub mod changes;
pub mod cli;
pub mod config;
pub mod error;
pub mod fleet;
pub mod generate;
pub mod governance;
pub mod input;
pub mod jwt;
pub mod manifest;
pub mod nsc;
pub mod nsc_import;
pub mod ops;
pub mod plan;
pub mod show;
pub mod store;
pub mod suggest;
pub mod trust;
pub mod vault;
pub mod verify;
pub mod wiring;
