//! Guardrails: event triggers that read the DDL parse tree, bound every DDL's lock wait, and
//! stop statements that take long ACCESS EXCLUSIVE / SHARE locks on big tables, with the safe
//! alternative spelled out.
//!
//! - [`migrate_core::rules`]: the rules, pure (facts in, findings out).
//! - [`facts`]: parse tree + catalog -> facts, without taking locks.
//! - [`judge`]: facts -> verdict, logged and raised; shared by the two entry points:
//! - [`trigger`]: the event-trigger entry points (DDL);
//! - [`hook`]: the `ProcessUtility` hook (VACUUM FULL, CLUSTER, REINDEX, REFRESH, TRUNCATE,
//!   LOCK), installed only when the library is preloaded; [`utility`] reads its statements.
//! - [`state`]: per-transaction allowances and lock_timeout bookkeeping.
//! - [`log`]: `migrate.guard_log`, including blocked statements whose transaction aborts.
//! - [`api`]: `migrate.allow()`, `migrate.check()`, `migrate.rules`.

pub mod api;
pub mod facts;
pub mod hook;
pub mod judge;
pub mod log;
pub mod state;
pub mod trigger;
pub mod utility;
