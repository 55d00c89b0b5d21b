//! clan-nats: declarative NATS decentralized auth for clan/NixOS fleets.
//!
//! Data flows one way: [`config`] (schema, validation) → [`plan`] (mapping rules)
//! → [`generate`] (reconcile with the existing store, sign, encrypt) →
//! [`store`] (nsc layout, atomic write). [`verify`] checks a written store.

pub mod jwt;
pub mod config;
pub mod plan;
pub mod vault;
pub mod store;
pub mod generate;
pub mod manifest;
pub mod verify;
pub mod cli;
pub mod nsc;
