//! Every `migrate.*` setting, registered in one place.

use std::ffi::{c_int, c_void};

use pgrx::pg_sys;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `migrate.allow_out_of_order`: let `apply()` run a pending migration whose version is older
/// than the newest applied one (a branch merged late). Off by default: such a migration is
/// refused so it is never silently skipped or silently run out of order.
pub static ALLOW_OUT_OF_ORDER: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `migrate.safe_by_default`: `deploy()` runs the safe form of a statement the guard would
/// block (see the `safe` migration option) instead of blocking it. Read it through
/// [`safe_mode`], which also knows the option of the migration running now.
pub static SAFE_BY_DEFAULT: GucSetting<bool> = GucSetting::<bool>::new(false);

thread_local! {
    /// The `safe` option of the migration running now (see [`with_migration_safe`]).
    static MIGRATION_SAFE: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether safe mode is on: the `safe` option of the migration running now when it has one,
/// otherwise `migrate.safe_by_default`. The one place every feature reads the mode from.
pub fn safe_mode() -> bool {
    safe_mode_for(MIGRATION_SAFE.with(std::cell::Cell::get))
}

/// Whether safe mode is on for a migration registered with this `safe` option.
pub fn safe_mode_for(option: Option<bool>) -> bool {
    migrate_core::options::safe_mode(option, SAFE_BY_DEFAULT.get())
}

/// Runs `f` (a migration's step) with that migration's `safe` option in force for
/// [`safe_mode`]; the previous one is back afterwards, also when `f` raises.
pub fn with_migration_safe<R>(option: Option<bool>, f: impl FnOnce() -> R) -> R {
    let _scope = MigrationSafe::enter(option);
    f()
}

/// A migration's `safe` option in force for [`safe_mode`] until dropped (also on unwind).
pub struct MigrationSafe(Option<bool>);

impl MigrationSafe {
    pub fn enter(option: Option<bool>) -> Self {
        MigrationSafe(MIGRATION_SAFE.with(|c| c.replace(option)))
    }
}

impl Drop for MigrationSafe {
    fn drop(&mut self) {
        MIGRATION_SAFE.with(|c| c.set(self.0));
    }
}

// `migrate.lock_timeout` (ms): the lock_timeout every guarded DDL runs with, unless the
// session's own is lower and non-zero. 0 leaves lock_timeout alone. Raising it (or 0) weakens
// the guard. PostgreSQL owns the variable through DefineCustomIntVariable; we only read it.
static mut LOCK_TIMEOUT_MS: c_int = 1000;

/// `migrate.lock_retries`: how often `deploy()` tries a migration again after it gave up on a
/// lock (lock_timeout, 55P03) before it reports the failure.
pub static LOCK_RETRIES: GucSetting<i32> = GucSetting::<i32>::new(5);

/// `migrate.lock_retry_delay` (ms): the wait before the first retry; each further retry waits
/// twice as long (up to a minute), with random jitter so competing deploys do not align.
pub static LOCK_RETRY_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(500);

// `migrate.guard_min_rows`: tables estimated below this many rows are exempt from the
// size-dependent rules. Raising it weakens the guard.
static mut GUARD_MIN_ROWS: c_int = 10_000;

/// `migrate.snapshot_wait_timeout` (ms): how long a concurrent index build of a `deploy()` step
/// may sit in one of its waits for other transactions (older snapshots above all) before it is
/// cancelled and its invalid index dropped. 0: no limit. It bounds only the deploying session's
/// own build, so any role may set it.
pub static SNAPSHOT_WAIT_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(3_600_000);

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

/// `migrate.max_wal_rate` (kB per second): backfills wait between batches while the server
/// writes WAL faster than this (all sessions, measured over at least a second). 0: off.
pub static MAX_WAL_RATE_KB: GucSetting<i32> = GucSetting::<i32>::new(0);

/// `migrate.max_active_backends`: backfills wait between batches while more client sessions
/// than this are running a statement. 0: off.
pub static MAX_ACTIVE_BACKENDS: GucSetting<i32> = GucSetting::<i32>::new(0);

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
    crate::pg::security::is_migrate_admin()
}

/// What the administrator configured for each guard setting (configuration file, server
/// command line or default): sessions may move a setting freely on its strong side of this
/// value (and back to it), but weakening past it needs privilege. Kept per backend, updated
/// by the check hooks whenever a value arrives from an administrator's source.
static mut BASELINE_GUARD_MODE: c_int = GuardMode::Enforce as c_int;
static mut BASELINE_LOCK_TIMEOUT_MS: c_int = 1000;
static mut BASELINE_GUARD_MIN_ROWS: c_int = 10_000;

/// The guard settings a session could otherwise use to switch the guard off.
#[derive(Clone, Copy)]
enum GuardSetting {
    Mode,
    LockTimeout,
    MinRows,
}

impl GuardSetting {
    fn name(self) -> &'static str {
        match self {
            GuardSetting::Mode => "migrate.guard",
            GuardSetting::LockTimeout => "migrate.lock_timeout",
            GuardSetting::MinRows => "migrate.guard_min_rows",
        }
    }

    fn baseline(self) -> *mut c_int {
        match self {
            GuardSetting::Mode => &raw mut BASELINE_GUARD_MODE,
            GuardSetting::LockTimeout => &raw mut BASELINE_LOCK_TIMEOUT_MS,
            GuardSetting::MinRows => &raw mut BASELINE_GUARD_MIN_ROWS,
        }
    }
}

/// True if `new` guards less than `baseline` for this setting.
fn weakens(setting: GuardSetting, new: c_int, baseline: c_int) -> bool {
    match setting {
        GuardSetting::Mode => new < baseline,
        // 0 turns the bound off; a longer bound lets DDL queue longer.
        GuardSetting::LockTimeout => baseline != 0 && (new == 0 || new > baseline),
        GuardSetting::MinRows => new > baseline,
    }
}

fn describe(setting: GuardSetting, value: c_int) -> String {
    match setting {
        GuardSetting::Mode => mode_name(value).to_string(),
        GuardSetting::LockTimeout => format!("{value}ms"),
        GuardSetting::MinRows => value.to_string(),
    }
}

/// The check every guard setting's hook makes. A value from the configuration file, the
/// command line or the default becomes the baseline; a value from a session (SET, SET LOCAL, a
/// function's SET clause, ALTER ROLE/DATABASE SET applied at login, PGOPTIONS) that weakens
/// the guard past the baseline needs superuser or migrate_admin, and is logged.
fn check_weakening(setting: GuardSetting, new: c_int, source: pg_sys::GucSource::Type) -> bool {
    let from_session = source >= pg_sys::GucSource::PGC_S_DATABASE;
    let baseline = setting.baseline();
    if !from_session {
        // SAFETY: a backend-local variable only this hook writes.
        unsafe { *baseline = new };
        return true;
    }
    // SAFETY: as above, a read.
    let base = unsafe { *baseline };
    if !weakens(setting, new, base) {
        return true;
    }
    // SAFETY: reads transaction state.
    let allowed = unsafe { pg_sys::IsTransactionState() } && may_weaken_guard();
    if !allowed {
        let message = format!(
            "permission denied to weaken {} to {} (configured: {})",
            setting.name(),
            describe(setting, new),
            describe(setting, base)
        );
        let message = std::ffi::CString::new(message).unwrap_or_default();
        // SAFETY: GUC_check_errcode/_errmsg_string/_errhint_string are how check hooks report;
        // the strings are palloc'd as PostgreSQL expects.
        unsafe {
            pg_sys::GUC_check_errcode(
                pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as c_int,
            );
            pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr());
            pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(
                c"Only superusers and members of migrate_admin may weaken the guard; anyone may strengthen it. To permit one rule for one transaction, a member of migrate_admin can SELECT migrate.allow('rule', 'why')."
                    .as_ptr(),
            );
        }
        return false;
    }
    let role =
        crate::pg::security::role_name(crate::pg::security::current_user()).unwrap_or_default();
    pgrx::log!(
        "{} weakened from {} to {} by role \"{role}\"",
        setting.name(),
        describe(setting, base),
        describe(setting, new)
    );
    true
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_guard_mode(
    newval: *mut c_int,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value.
    check_weakening(GuardSetting::Mode, unsafe { *newval }, source)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_lock_timeout(
    newval: *mut c_int,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value.
    check_weakening(GuardSetting::LockTimeout, unsafe { *newval }, source)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_guard_min_rows(
    newval: *mut c_int,
    _extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value.
    check_weakening(GuardSetting::MinRows, unsafe { *newval }, source)
}

// `migrate.tool`: the migration tool the team uses (`django`, `alembic`, ...), so the guard's
// hints name that tool's safe operation too. Only wording: any role may set it.
static mut TOOL: *mut std::ffi::c_char = std::ptr::null_mut();

/// The tool `migrate.tool` names, if any.
pub fn tool() -> Option<migrate_core::tools::Tool> {
    // SAFETY: PostgreSQL keeps the variable a valid C string (or NULL) between statements.
    let value = unsafe {
        let p = TOOL;
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    }?;
    migrate_core::tools::Tool::parse(&value)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_tool(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the proposed value (NULL or a C string).
    let value = unsafe {
        let p = *newval;
        if p.is_null() {
            return true;
        }
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    if value.is_empty() || migrate_core::tools::Tool::parse(&value).is_some() {
        return true;
    }
    let names: Vec<&str> = migrate_core::tools::TOOLS
        .iter()
        .map(|t| t.name())
        .collect();
    let hint = std::ffi::CString::new(format!(
        "Use one of: {}; or '' for SQL only.",
        names.join(", ")
    ))
    .unwrap_or_default();
    let message =
        std::ffi::CString::new(format!("unknown migration tool \"{value}\"")).unwrap_or_default();
    // SAFETY: as in check_weakening: how check hooks report, with palloc'd strings.
    unsafe {
        pg_sys::GUC_check_errcode(pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE as c_int);
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr());
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(hint.as_ptr());
    }
    false
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
    GucRegistry::define_bool_guc(
        c"migrate.safe_by_default",
        c"deploy() runs the safe form of a statement the guard would block instead of blocking it.",
        c"CREATE INDEX becomes CONCURRENTLY, constraints are added NOT VALID and validated later, and so on (docs/GUARD.md).",
        &SAFE_BY_DEFAULT,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: registers backend-lifetime variables with static names and check hooks.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            c"migrate.tool".as_ptr(),
            c"The migration tool this database's migrations are written with, for the guard's hints.".as_ptr(),
            c"django, alembic, rails, prisma, drizzle, flyway, golang-migrate, sqlx, diesel or dbmate: hints then also name that tool's safe operation. Empty: SQL only.".as_ptr(),
            &raw mut TOOL,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            0,
            Some(check_tool),
            None,
            None,
        );
        pg_sys::DefineCustomIntVariable(
            c"migrate.lock_timeout".as_ptr(),
            c"lock_timeout for every DDL statement the guard sees (0: leave lock_timeout alone).".as_ptr(),
            c"A DDL stuck behind a long transaction gives up after this long instead of making every later query queue behind it. The session's own lock_timeout wins when it is lower and not 0. Raising it or setting 0 needs superuser or migrate_admin.".as_ptr(),
            &raw mut LOCK_TIMEOUT_MS,
            1000,
            0,
            i32::MAX,
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GUC_UNIT_MS as c_int,
            Some(check_lock_timeout),
            None,
            None,
        );
        pg_sys::DefineCustomIntVariable(
            c"migrate.guard_min_rows".as_ptr(),
            c"Tables estimated below this many rows are exempt from size-dependent guard rules.".as_ptr(),
            c"Estimates come from pg_class (the planner's view); nothing is counted and no lock is taken. Raising it needs superuser or migrate_admin.".as_ptr(),
            &raw mut GUARD_MIN_ROWS,
            10_000,
            0,
            i32::MAX,
            pg_sys::GucContext::PGC_USERSET,
            0,
            Some(check_guard_min_rows),
            None,
            None,
        );
    }
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
    GucRegistry::define_int_guc(
        c"migrate.snapshot_wait_timeout",
        c"How long a concurrent index build of deploy() may wait for other transactions to end (0: no limit).",
        c"CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY wait for every transaction holding an older snapshot (and for writers of the table). After this long in one such wait the build is cancelled, its invalid index dropped, and the step fails naming the sessions that held it up.",
        &SNAPSHOT_WAIT_TIMEOUT_MS,
        0,
        i32::MAX,
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
            c"Lowering it below the configured value needs superuser or membership in migrate_admin, and is logged.".as_ptr(),
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
    // SAFETY: a plain read of a backend-local int that PostgreSQL updates between statements.
    unsafe { LOCK_TIMEOUT_MS }
}

pub fn lock_retries() -> i32 {
    LOCK_RETRIES.get()
}

pub fn lock_retry_delay_ms() -> i32 {
    LOCK_RETRY_DELAY_MS.get()
}

pub fn snapshot_wait_timeout_ms() -> i32 {
    SNAPSHOT_WAIT_TIMEOUT_MS.get()
}

pub fn guard_min_rows() -> f64 {
    // SAFETY: as lock_timeout_ms.
    f64::from(unsafe { GUARD_MIN_ROWS })
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
    GucRegistry::define_int_guc(
        c"migrate.max_wal_rate",
        c"Backfills pause between batches while the server writes more WAL per second than this (0: off).",
        c"The rate of the whole server (every session's WAL, not only the job's), from pg_current_wal_lsn() over at least one second. Written like a size: '20MB' is 20 MB per second.",
        &MAX_WAL_RATE_KB,
        0,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_int_guc(
        c"migrate.max_active_backends",
        c"Backfills pause between batches while more client sessions than this are running a statement (0: off).",
        c"Counts pg_stat_activity's client backends in state active, other than the job's own workers.",
        &MAX_ACTIVE_BACKENDS,
        0,
        10_000,
        GucContext::Suset,
        GucFlags::default(),
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

pub fn max_wal_rate_kb() -> i32 {
    MAX_WAL_RATE_KB.get()
}

pub fn max_active_backends() -> i32 {
    MAX_ACTIVE_BACKENDS.get()
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
    use super::{weakens, GuardSetting};

    #[test]
    fn what_weakens_each_guard_setting() {
        // mode: off (0) < warn (1) < enforce (2)
        assert!(weakens(GuardSetting::Mode, 1, 2));
        assert!(!weakens(GuardSetting::Mode, 2, 1));
        // lock_timeout: 0 or longer than configured weakens; shorter does not
        assert!(weakens(GuardSetting::LockTimeout, 0, 1000));
        assert!(weakens(GuardSetting::LockTimeout, 5000, 1000));
        assert!(!weakens(GuardSetting::LockTimeout, 100, 1000));
        assert!(!weakens(GuardSetting::LockTimeout, 1000, 1000));
        // configured 0 (off): nothing a session sets is weaker
        assert!(!weakens(GuardSetting::LockTimeout, 5000, 0));
        // guard_min_rows: higher weakens
        assert!(weakens(GuardSetting::MinRows, 20_000, 10_000));
        assert!(!weakens(GuardSetting::MinRows, 10, 10_000));
    }
}
