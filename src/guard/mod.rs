//! Guardrails: event triggers that read the DDL parse tree, bound every DDL's lock wait, and
//! stop statements that take long ACCESS EXCLUSIVE / SHARE locks on big tables, with the safe
//! alternative spelled out.
//!
//! - [`migrate_core::rules`]: the rules, pure (facts in, findings out).
//! - [`facts`]: parse tree + catalog -> facts, without taking locks.
//! - [`type_change`]: what an ALTER COLUMN ... TYPE rewrites or rebuilds, by the server's logic.
//! - [`partition`]: the tables a statement on a parent reaches; what ATTACH PARTITION scans.
//! - [`judge`]: facts -> verdict, logged and raised; shared by the two entry points:
//! - [`trigger`]: the event-trigger entry points (DDL);
//! - [`hook`]: the `ProcessUtility` hook (VACUUM FULL, CLUSTER, REINDEX, REFRESH, TRUNCATE,
//!   LOCK), installed only when the library is preloaded; [`utility`] reads its statements.
//! - [`state`]: per-transaction allowances and lock_timeout bookkeeping.
//! - [`log`]: `migrate.guard_log`, including blocked statements whose transaction aborts.
//! - [`schema_changes`]: `migrate.schema_changes`, every committed DDL and its migration.
//! - [`api`]: `migrate.allow()`, `migrate.check()`, `migrate.rules`.
//! - [`unit`]: the committed unit (a migration step) a statement runs in, as deploy() commits.
//! - [`held`]: `lock_held_across_statements`, checked before every statement of a migration.
//! - [`views`]: safe mode's dependent-view rebuild around `ALTER COLUMN ... TYPE`.

pub mod api;
pub mod facts;
pub mod held;
pub mod hook;
pub mod judge;
pub mod log;
pub mod partition;
pub mod schema_changes;
pub mod state;
pub mod trigger;
pub mod type_change;
pub mod unit;
pub mod utility;
pub mod views;
