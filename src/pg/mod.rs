//! Thin safe wrappers over the PostgreSQL internals the extension needs: switching the current
//! user, pinning `search_path`, internal subtransactions, and parsing/executing SQL scripts with
//! precise error positions. Every `unsafe` block of the crate that touches server state lives here.

pub mod script;
pub mod security;
pub mod subxact;
