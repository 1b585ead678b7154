//! Thin safe wrappers over the PostgreSQL internals the extension needs: switching the current
//! user, pinning `search_path`, internal subtransactions, transactions in background workers, and
//! parsing/executing SQL scripts with precise error positions, single-value queries that raise.

pub mod backend;
pub mod dsm;
pub mod expr;
pub mod list;
pub mod locks;
pub mod observe;
pub mod partitions;
pub mod procedure;
pub mod query;
pub mod script;
pub mod security;
pub mod snapshot_wait;
pub mod statement;
pub mod subxact;
pub mod toplevel;
pub mod utility_hook;
pub mod xact;

/// Declares the `pg_finfo_*` record that marks a raw C function as calling convention V1 (for
/// the functions pgrx cannot declare: event triggers and procedures that commit).
#[macro_export]
macro_rules! v1_function_info {
    ($name:ident) => {
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $name() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record =
                pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}
