//! The migration registry: versions, checksums, and applying/rolling back migrations in the
//! caller's transaction.

pub(crate) mod adopt;
pub(crate) mod api;
pub mod catalog;
mod dry_run;
pub mod execute;
pub mod safe;
mod tool_table;

pub use execute::parse_for_check;
