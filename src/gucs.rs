//! Every `migrate.*` setting, registered in one place.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `migrate.allow_out_of_order`: let `apply()` run a pending migration whose version is older
/// than the newest applied one (a branch merged late). Off by default: such a migration is
/// refused so it is never silently skipped or silently run out of order.
pub static ALLOW_OUT_OF_ORDER: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Registers the settings; called from `_PG_init`.
pub fn init() {
    GucRegistry::define_bool_guc(
        c"migrate.allow_out_of_order",
        c"Allow apply() to run pending migrations older than the newest applied one.",
        c"Off by default: a late-merged migration is refused until you allow it explicitly.",
        &ALLOW_OUT_OF_ORDER,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn allow_out_of_order() -> bool {
    ALLOW_OUT_OF_ORDER.get()
}
