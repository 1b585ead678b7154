//! Expand/contract columns: rename a column or change its type while old and new application
//! versions run side by side.
//!
//! - [`api`]: `migrate.expand_column()` (new column, sync trigger, backfill job),
//!   `migrate.contract_column()` (the finalize gate, then drop the old column and move the
//!   name) and `migrate.undo_expand_column()` (an expand migration's down script).
//! - [`column`]: what the catalog says about the table and column, what depends on the
//!   column, and the registry rows (`migrate.expansion_registry`).
//! - [`sync`]: the sync trigger's function text (pure).
//!
//! Who runs what (docs/SECURITY.md): the three functions run as their caller, who must have
//! the table owner's privileges; the DDL runs as the caller, under the guard like any DDL
//! (bounded by `migrate.lock_timeout`); the trigger function is `SECURITY INVOKER`, owned by
//! the table owner, with a pinned `search_path`, so it runs as whoever writes the table, like
//! any trigger the owner adds; the backfill job runs as the table owner; the registry is
//! written as the registry owner.

pub mod api;
pub mod column;
pub mod sync;

pub use api::{take_gate, Gate};
