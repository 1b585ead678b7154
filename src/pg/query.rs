//! Single-value catalog queries through SPI. pgrx's `Spi::get_one` reports "no row" as an
//! error; read with `.ok()`, every other failure (a missing table, a cancelled query, a
//! permission error) would silently read as "nothing there" too, and decide behaviour.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiError;

/// The first column of the first row of `sql`: None when there is no row or the value is
/// NULL; any other failure raises.
pub fn one<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid<'_>]) -> Option<T> {
    match Spi::get_one_with_args::<T>(sql, args) {
        Ok(value) => value,
        Err(SpiError::InvalidPosition) => None,
        Err(e) => error!("migrate: internal query failed: {e}"),
    }
}

/// Like [`one`] for a query that always returns a non-NULL value.
pub fn required<T: FromDatum + IntoDatum>(sql: &str, args: &[DatumWithOid<'_>]) -> T {
    one(sql, args).unwrap_or_else(|| error!("migrate: internal query returned nothing: {sql}"))
}
