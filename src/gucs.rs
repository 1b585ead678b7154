//! Every `migrate.*` setting, registered in one place.

use std::ffi::{c_int, c_void};

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `migrate.allow_out_of_order`: let `apply()` run a pending migration whose version is older
/// than the newest applied one (a branch merged late). Off by default: such a migration is
/// refused so it is never silently skipped or silently run out of order.
pub static ALLOW_OUT_OF_ORDER: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `migrate.lock_timeout` (ms): the lock_timeout every guarded DDL runs with, unless the
/// session's own is lower and non-zero. 0 leaves lock_timeout alone.
pub static LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// `migrate.lock_retries`: how often `deploy()` tries a migration again after it gave up on a
/// lock (lock_timeout, 55P03) before it reports the failure.
pub static LOCK_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(5);

/// `migrate.lock_retry_delay` (ms): the wait before the first retry; each further retry waits
/// twice as long (up to a minute), with random jitter so competing deploys do not align.
pub static LOCK_RETRY_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(500);

/// `migrate.guard_min_rows`: tables estimated below this many rows are exempt from the
/// size-dependent rules.
pub static GUARD_MIN_ROWS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

/// `migrate.max_job_workers`: background workers that may run jobs at once in one database.
pub static MAX_JOB_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(4);

/// `migrate.backfill_workers`: workers a backfill uses when `backfill()` is not told.
pub static BACKFILL_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(1);

/// `migrate.backfill_batch_time` (ms): the duration an adaptive backfill batch aims for.
pub static BACKFILL_BATCH_TIME_MS: GucSetting<i32> = GucSetting::<i32>::new(150);

/// `migrate.backfill_statement_timeout` (ms): a batch running longer is cancelled and retried
/// smaller.
pub static BACKFILL_STATEMENT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

/// `migrate.max_replication_lag` (kB): backfills wait between batches while a connected standby
/// has not replayed this much WAL. 0 turns the throttle off.
pub static MAX_REPLICATION_LAG_KB: GucSetting<i32> = GucSetting::<i32>::new(0);

/// `migrate.allow_superuser_jobs`: let a superuser queue jobs (which then run as superuser).
pub static ALLOW_SUPERUSER_JOBS: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `migrate.launcher_database`: where the launcher (with shared_preload_libraries) connects to
/// list the databases whose interrupted jobs it resumes.
pub static LAUNCHER_DATABASE: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"postgres"));

/// `migrate.guard`: what the guard does with a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GuardMode {
    Off = 0,
    Warn = 1,
    Enforce = 2,
}

impl GuardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardMode::Off => "off",
            GuardMode::Warn => "warn",
            GuardMode::Enforce => "enforce",
        }
    }
}

// PostgreSQL owns this variable through DefineCustomEnumVariable; we only read it.
static mut GUARD_MODE: c_int = GuardMode::Enforce as c_int;

struct EnumOptions([pg_sys::config_enum_entry; 4]);
// SAFETY: immutable static data with 'static C strings, read by PostgreSQL only.
unsafe impl Sync for EnumOptions {}

static GUARD_OPTIONS: EnumOptions = EnumOptions([
    pg_sys::config_enum_entry {
        name: c"off".as_ptr(),
        val: 0,
        hidden: false,
    },
    pg_sys::config_enum_entry {
        name: c"warn".as_ptr(),
        val: 1,
        hidden: false,
    },
    pg_sys::config_enum_entry {
        name: c"enforce".as_ptr(),
        val: 2,
        hidden: false,
    },
    pg_sys::config_enum_entry {
        name: std::ptr::null(),
        val: 0,
        hidden: false,
    },
]);

pub fn guard_mode() -> GuardMode {
    // SAFETY: a plain read of a backend-local int that PostgreSQL updates between statements.
    match unsafe { GUARD_MODE } {
        0 => GuardMode::Off,
        1 => GuardMode::Warn,
        _ => GuardMode::Enforce,
    }
}

fn mode_name(value: c_int) -> &'static str {
    match value {
        0 => "off",
        1 => "warn",
        _ => "enforce",
    }
}

/// True if the current user may weaken the guard: a superuser or a member of migrate_admin.
pub fn may_weaken_guard() -> bool {
    // SAFETY: catalog lookups, only called inside a transaction.
    unsafe {
        let user = pg_sys::GetUserId();
        if pg_sys::superuser_arg(user) {
            return true;
        }
        let admin = pg_sys::get_role_oid(c"migrate_admin".as_ptr(), true);
        admin != pg_sys::InvalidOid && pg_sys::has_privs_of_role(user, admin)
    }
}

/// Check hook of `migrate.guard`: lowering it from a session (SET, ALTER ROLE/DATABASE SET
/// applied at login) needs superuser or migrate_admin, and every lowering is logged.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_guard_mode(
    newval: *mut c_int,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value.
    let (new, current) = unsafe { (*newval, GUARD_MODE) };
    // The configuration file and the server command line are the administrator's.
    let from_session = source >= pg_sys::GucSource::PGC_S_DATABASE;
    // SAFETY: reads transaction state.
    if new >= current || !from_session || !unsafe { pg_sys::IsTransactionState() } {
        return true;
    }
    if !may_weaken_guard() {
        // SAFETY: GUC_check_errcode/_errmsg_string are how check hooks report; the message is
        // palloc'd as PostgreSQL expects.
        unsafe {
            pg_sys::GUC_check_errcode(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as c_int,
            );
            pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(
                c"permission denied to lower migrate.guard: only superusers and members of migrate_admin may"
                    .as_ptr(),
            );
        }
        return false;
    }
    let role =
        crate::pg::security::role_name(crate::pg::security::current_user()).unwrap_or_default();
    pgrx::log!(
        "migrate.guard lowered from {} to {} by role \"{role}\"",
        mode_name(current),
        mode_name(new)
    );
    true
}

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
    GucRegistry::define_int_guc(
        c"migrate.lock_timeout",
        c"lock_timeout for every DDL statement the guard sees (0: leave lock_timeout alone).",
        c"A DDL stuck behind a long transaction gives up after this long instead of making every later query queue behind it. The session's own lock_timeout wins when it is lower and not 0.",
        &LOCK_TIMEOUT_MS,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.guard_min_rows",
        c"Tables estimated below this many rows are exempt from size-dependent guard rules.",
        c"Estimates come from pg_class (the planner's view); nothing is counted and no lock is taken.",
        &GUARD_MIN_ROWS,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.lock_retries",
        c"How often deploy() retries a migration that gave up waiting for a lock.",
        c"Between tries the migration's transaction is rolled back, so it holds no lock and nothing queues behind it.",
        &LOCK_RETRIES,
        0,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.lock_retry_delay",
        c"Wait before deploy()'s first lock retry; it doubles on each further retry (at most 1 minute), with jitter.",
        c"",
        &LOCK_RETRY_DELAY_MS,
        1,
        60_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    define_job_gucs();
    // SAFETY: registers a backend-lifetime variable with static names and options.
    unsafe {
        pg_sys::DefineCustomEnumVariable(
            c"migrate.guard".as_ptr(),
            c"What the migration guard does with outage-causing DDL: off, warn or enforce."
                .as_ptr(),
            c"Lowering it needs superuser or membership in migrate_admin, and is logged.".as_ptr(),
            &raw mut GUARD_MODE,
            GuardMode::Enforce as c_int,
            GUARD_OPTIONS.0.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            0,
            Some(check_guard_mode),
            None,
            None,
        );
    }
}

pub fn allow_out_of_order() -> bool {
    ALLOW_OUT_OF_ORDER.get()
}

pub fn lock_timeout_ms() -> i32 {
    LOCK_TIMEOUT_MS.get()
}

pub fn lock_retries() -> i32 {
    LOCK_RETRIES.get()
}

pub fn lock_retry_delay_ms() -> i32 {
    LOCK_RETRY_DELAY_MS.get()
}

/// The wait before lock retry number `attempt` (1-based): `base_ms` doubled per earlier retry,
/// capped at a minute, then scaled by `jitter` in [0, 1) to between half and all of it.
pub fn lock_retry_backoff_ms(base_ms: i32, attempt: u32, jitter: f64) -> u64 {
    let full = (i64::from(base_ms.max(1)) << attempt.saturating_sub(1).min(20)).min(60_000) as f64;
    (full * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))) as u64
}

pub fn guard_min_rows() -> f64 {
    GUARD_MIN_ROWS.get() as f64
}

fn define_job_gucs() {
    GucRegistry::define_int_guc(
        c"migrate.max_job_workers",
        c"Background workers that may run jobs at the same time, per database.",
        c"Jobs beyond this wait in state queued and start as running ones finish. Each worker also counts against max_worker_processes.",
        &MAX_JOB_WORKERS,
        1,
        64,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.backfill_workers",
        c"Workers a backfill uses when migrate.backfill() is called without workers.",
        c"Each walks its own key ranges in batches; more workers finish sooner and write WAL faster. At most migrate.max_job_workers run at once.",
        &BACKFILL_WORKERS,
        1,
        64,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"migrate.backfill_batch_time",
        c"Target duration of one backfill batch; the batch size adapts to it.",
        c"Row locks are held for about this long per batch whatever the row width. A job queued with an explicit batch_size keeps that size.",
        &BACKFILL_BATCH_TIME_MS,
        10,
        60_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.backfill_statement_timeout",
        c"statement_timeout of each backfill batch; a batch that exceeds it is retried smaller.",
        c"",
        &BACKFILL_STATEMENT_TIMEOUT_MS,
        100,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"migrate.max_replication_lag",
        c"Backfills pause between batches while a standby lags by more than this much WAL (0: off).",
        c"Measured from pg_stat_replication as the distance between the current WAL position and each standby's replay position.",
        &MAX_REPLICATION_LAG_KB,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_bool_guc(
        c"migrate.allow_superuser_jobs",
        c"Allow superusers to queue background jobs, which then run as superuser.",
        c"Off by default: a job runs with the privileges of the role that queued it, and a superuser job can do anything.",
        &ALLOW_SUPERUSER_JOBS,
        GucContext::Suset,
        GucFlags::default(),
    );
    // A postmaster-level setting can only be defined while the postmaster loads the library.
    // SAFETY: reads a flag the postmaster sets while loading shared_preload_libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    GucRegistry::define_string_guc(
        c"migrate.launcher_database",
        c"Database the launcher connects to in order to find databases with interrupted jobs.",
        c"Only used when migrate is in shared_preload_libraries.",
        &LAUNCHER_DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
}

pub fn max_job_workers() -> i32 {
    MAX_JOB_WORKERS.get()
}

pub fn backfill_workers() -> i32 {
    BACKFILL_WORKERS.get()
}

pub fn backfill_batch_time_ms() -> i32 {
    BACKFILL_BATCH_TIME_MS.get()
}

pub fn backfill_statement_timeout_ms() -> i32 {
    BACKFILL_STATEMENT_TIMEOUT_MS.get()
}

pub fn max_replication_lag_kb() -> i32 {
    MAX_REPLICATION_LAG_KB.get()
}

pub fn allow_superuser_jobs() -> bool {
    ALLOW_SUPERUSER_JOBS.get()
}

pub fn launcher_database() -> String {
    LAUNCHER_DATABASE
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| "postgres".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_retry_backoff_doubles_with_jitter_and_a_cap() {
        assert_eq!(super::lock_retry_backoff_ms(500, 1, 1.0), 500);
        assert_eq!(super::lock_retry_backoff_ms(500, 1, 0.0), 250);
        assert_eq!(super::lock_retry_backoff_ms(500, 3, 1.0), 2000);
        assert_eq!(super::lock_retry_backoff_ms(500, 40, 1.0), 60_000);
    }
}
