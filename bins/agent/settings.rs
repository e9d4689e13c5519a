//! The agent's configuration, in one layer: the TOML file and the
//! environment -> validated, typed [`Settings`] (and, for `run` and
//! `check-config`, the [`Secrets`]). `agent.example.toml` is the contract.
//!
//! ```text
//!   agent.toml ─┐
//!               ├─ source (figment: layered, each value knows its origin)
//!   CALLBRIDGE_*┘     │  unknown keys, wrong TOML types
//!                     ▼
//!   keys (the one table of keys, types, defaults)
//!                     │
//!             check ──┴── validate (+ carrier, transfer): every key typed
//!                     │   and checked, cross-key checks; errors collected
//!                     ▼
//!   Settings ── secrets (GEMINI_API_KEY, trunk password, carriers) ── Secrets
//!                     │
//!                     ▼
//!   mapping: the session manager's, the model's and the store's configs
//! ```
//!
//! Every key `[section] key` can be overridden by the variable
//! `CALLBRIDGE_<SECTION>_<KEY>` ([`keys::env_name`]); secrets are not keys
//! and come from the environment only. A bad configuration is reported
//! whole, one error per line, each naming the key, the value, where the
//! value came from (`(in FILE)` or `(from VARIABLE)`) and what the key
//! accepts; `agent` exits 2.
//!
//! Modules depend one way, each only on those before it in this list,
//! none on this one: `error`, `keys`, `source`, `check`, `transfer`,
//! `amd`, `openai`, `carrier`, `sip_transport`, `routing`, `values`, `validate`,
//! `secrets`, `load`, `mapping`, `show` (`agent config show`).

mod amd;
mod carrier;
mod check;
mod error;
mod keys;
mod load;
mod mapping;
mod openai;
pub(crate) mod providers;
pub(crate) mod routing;
pub(crate) mod secrets;
mod show;
mod sip_transport;
mod source;
mod transfer;
mod validate;
mod values;
mod webhooks;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_openai;
#[cfg(test)]
mod tests_ops;
#[cfg(test)]
mod tests_routing;
#[cfg(test)]
mod tests_sip_transport;

pub use keys::env_keys;
pub use load::load;
pub use secrets::Secrets;
pub use show::listing;
pub use values::{Provider, Settings};
