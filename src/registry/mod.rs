//! The migration registry: versions, checksums, and applying/rolling back migrations in the
//! caller's transaction.

pub(crate) mod api;
pub mod catalog;
pub mod checksum;
mod dry_run;
pub mod execute;

pub use execute::parse_for_check;
pub mod options;
pub mod plan;
pub mod version;
