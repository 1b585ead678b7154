//! The extension's own heavyweight locks. An advisory-lock key is public: any role can take
//! (10, 42) and stall whoever needs it, or pose as its holder. These are object locks
//! (`LOCKTAG_OBJECT`) on the "class" `migrate.locks` (a table's OID, which no catalog uses as a
//! class id), which no SQL statement can take: only this module does. They queue fairly like
//! every heavyweight lock, honour lock_timeout, and show in pg_locks as `locktype = 'object'`,
//! `classid = 'migrate.locks'::regclass`, `objid` = the key, `objsubid` = the namespace.
//!
//! They live in the user lock method, as advisory locks do, because a session lock of the
//! default method is released by every transaction abort (ProcReleaseLocks), and workers abort
//! failed batches. The one SQL call that reaches them is `pg_advisory_unlock_all()`, which drops
//! every session lock of the method: code that runs other people's SQL checks with [`held`]
//! afterwards that it still holds its locks.

use std::cell::Cell;

use pgrx::pg_sys;

/// A namespace of keys (pg_locks' `objsubid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Namespace {
    /// Held (session) by the worker that leads a job; key: the job id.
    Job = 1,
    /// Held (session) by the worker walking a key range; key: the range id.
    Range = 2,
    /// Held (session) by every job worker; key: a random number.
    Slot = 3,
    /// Per job, for the length of a transaction: shared by each batch, exclusive by a control
    /// call (pause, cancel, resume); key: the job id.
    Control = 4,
    /// Held (session) by the backend running `deploy()`; key: 0.
    Deploy = 5,
}

/// Lock strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

impl Mode {
    fn lockmode(self) -> pg_sys::LOCKMODE {
        (match self {
            Mode::Shared => pg_sys::ShareLock,
            Mode::Exclusive => pg_sys::ExclusiveLock,
        }) as pg_sys::LOCKMODE
    }
}

thread_local! {
    /// OID of `migrate.locks` in this backend's database (a backend serves one database).
    static CLASS: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// OID of `migrate.locks`, the class id of every lock here.
pub fn class_oid() -> pg_sys::Oid {
    if let Some(oid) = CLASS.get() {
        return oid;
    }
    let oid = crate::pg::query::required::<pg_sys::Oid>(
        "SELECT 'migrate.locks'::pg_catalog.regclass::pg_catalog.oid",
        &[],
    );
    CLASS.set(Some(oid));
    oid
}

fn tag(namespace: Namespace, key: i32) -> pg_sys::LOCKTAG {
    // SAFETY: reads a backend-local variable set at connection.
    let database = unsafe { pg_sys::MyDatabaseId };
    // The layout SET_LOCKTAG_OBJECT builds (lock/lock.h).
    pg_sys::LOCKTAG {
        locktag_field1: database.to_u32(),
        locktag_field2: class_oid().to_u32(),
        locktag_field3: key as u32,
        locktag_field4: namespace as u16,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

/// Takes the lock without waiting; true if it was free. `session`: held until [`unlock`] or
/// the process exits, else until the transaction ends.
pub fn try_lock(namespace: Namespace, key: i32, mode: Mode, session: bool) -> bool {
    let tag = tag(namespace, key);
    // SAFETY: a valid tag; with dontWait the call returns LOCKACQUIRE_NOT_AVAIL instead of
    // sleeping; it raises only on shared memory exhaustion, as any lock does.
    let result = unsafe { pg_sys::LockAcquire(&tag, mode.lockmode(), session, true) };
    result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// Waits for the lock for the rest of the transaction (bounded by lock_timeout, as any lock
/// wait: a timeout raises 55P03).
pub fn lock(namespace: Namespace, key: i32, mode: Mode) {
    let tag = tag(namespace, key);
    // SAFETY: a valid tag; a transaction-level lock, released at transaction end.
    unsafe { pg_sys::LockAcquire(&tag, mode.lockmode(), false, false) };
}

/// Releases a session-level lock taken with [`try_lock`].
pub fn unlock(namespace: Namespace, key: i32, mode: Mode) {
    let tag = tag(namespace, key);
    // SAFETY: releasing a lock this backend holds (or a no-op with a warning if it does not).
    unsafe { pg_sys::LockRelease(&tag, mode.lockmode(), true) };
}

/// True if this backend holds the lock in `mode`.
pub fn held(namespace: Namespace, key: i32, mode: Mode) -> bool {
    let tag = tag(namespace, key);
    // SAFETY: a valid tag; a lookup in this backend's local lock table.
    #[cfg(feature = "pg15")]
    return unsafe { pg_sys::LockHeldByMe(&tag, mode.lockmode()) };
    // SAFETY: as above.
    #[cfg(not(feature = "pg15"))]
    return unsafe { pg_sys::LockHeldByMe(&tag, mode.lockmode(), false) };
}

/// SQL condition on pg_locks row `l`: a lock of this module, granted, in this database. The
/// one definition of "held here": the jobs view reads it through `migrate.held_locks()`
/// ([`held_locks_sql`]), the worker-slot count, the deploy lock check, stopping a job's
/// workers and the lock-holder messages through [`held_sql`].
const HELD: &str = "l.locktype OPERATOR(pg_catalog.=) 'object' AND l.granted \
    AND l.classid OPERATOR(pg_catalog.=) 'migrate.locks'::pg_catalog.regclass \
    AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d \
        WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())";

/// SQL condition on pg_locks row `l`: a lock of this module in `namespace`, granted, in this
/// database (`l.objid` is the key, `l.pid` the holder).
pub fn held_sql(namespace: Namespace) -> String {
    format!(
        "{HELD} AND l.objsubid OPERATOR(pg_catalog.=) {}",
        namespace as u16
    )
}

/// SQL: every lock of this module held in this database, as rows (namespace, key, pid).
pub fn held_locks_sql() -> String {
    format!(
        "SELECT l.objsubid::pg_catalog.int4 AS namespace, l.objid::pg_catalog.int8 AS key, l.pid \
         FROM pg_catalog.pg_locks l WHERE {HELD}"
    )
}
