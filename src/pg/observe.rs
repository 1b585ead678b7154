//! What a statement did, observed from inside the backend that ran it, for `plan()`: the table
//! locks it took, the tables it rewrote (a new relfilenode) and the tuples its scans read.
//! Read from the lock manager, the relation cache and this transaction's statistics, not
//! with catalog queries: `plan()` observes every statement, and three SPI queries per
//! statement made it a hundred times slower than running the script.

use std::collections::HashMap;
use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::{direct_function_call, pg_sys};

/// The lock modes in strength order, as `LOCK TABLE` spells them (index = lock mode number).
const MODES: [&str; 9] = [
    "",
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
];

/// One observation window: what is held and known now, compared after each statement.
pub struct Observer {
    /// Schemas whose relations are not the user's: pg_catalog, information_schema, migrate.
    skipped: Vec<pg_sys::Oid>,
    /// Every user relation known so far and its relfilenode (0: no storage).
    known: HashMap<pg_sys::Oid, u32>,
    /// Relation locks this backend holds: oid -> (bit mask of the modes, is an index).
    held: HashMap<pg_sys::Oid, (u32, bool)>,
    /// Scan counters of every user relation (indexes too) as last read. The statistics
    /// functions also count scans of earlier transactions not yet flushed, so only the change
    /// since the last reading means anything.
    counted: HashMap<pg_sys::Oid, i64>,
}

/// What one statement did.
pub struct Observed {
    /// "table: MODE", the strongest mode newly taken on each relation that existed before.
    pub locks: Vec<String>,
    /// Relations that existed before and got a new relfilenode.
    pub rewrites: Vec<String>,
    pub rows_scanned: i64,
    /// The same locks as `locks`: (relation, the strongest mode newly taken, its number).
    pub taken: Vec<(pg_sys::Oid, usize)>,
}

impl Observer {
    /// Starts observing: every user relation that exists now, and what is held.
    pub fn start() -> Self {
        let namespace = |name: &CStr| {
            // SAFETY: a NUL-terminated name; missing_ok returns InvalidOid.
            unsafe { pg_sys::get_namespace_oid(name.as_ptr(), true) }
        };
        let skipped = vec![
            pg_sys::PG_CATALOG_NAMESPACE.into(),
            namespace(c"information_schema"),
            namespace(c"migrate"),
        ];
        let mut known = HashMap::new();
        let mut counted = HashMap::new();
        Spi::connect(|client| {
            let rows = client
                .select(include_str!("../queries/plan_relations.sql"), None, &[])
                .unwrap_or_else(|e| error!("migrate.plan: could not list the relations: {e}"));
            for row in rows {
                let oid = row.get::<pg_sys::Oid>(1).ok().flatten();
                let file = row.get::<pg_sys::Oid>(2).ok().flatten();
                let index = row.get::<bool>(3).ok().flatten();
                if let (Some(oid), Some(file), Some(index)) = (oid, file, index) {
                    counted.insert(oid, scan_count(oid, index));
                    if !index {
                        known.insert(oid, file.to_u32());
                    }
                }
            }
        });
        let mut observer = Observer {
            skipped,
            known,
            held: HashMap::new(),
            counted,
        };
        observer.held = observer.held_relations();
        observer
    }

    /// What happened since the last observation (the statement just run), and moves on.
    pub fn after_statement(&mut self) -> Observed {
        let held = self.held_relations();
        let mut locks = Vec::new();
        let mut rewrites = Vec::new();
        let mut taken = Vec::new();
        for (&oid, &(mask, index)) in &held {
            if index {
                continue;
            }
            let before = self.held.get(&oid).map_or(0, |h| h.0);
            let Some(&file_before) = self.known.get(&oid) else {
                // Created by this statement: nobody else's concern. Known from now on.
                self.known.insert(oid, relfilenode(oid).unwrap_or(0));
                continue;
            };
            let new = mask & !before;
            if new != 0 {
                let strongest = 31 - new.leading_zeros();
                taken.push((oid, strongest as usize));
                locks.push(format!(
                    "{}: {}",
                    relation_name(oid),
                    MODES[strongest as usize]
                ));
            }
            // A rewrite takes ACCESS EXCLUSIVE, so only relations held so are looked at.
            if mask & (1 << pg_sys::AccessExclusiveLock) != 0 && file_before != 0 {
                if let Some(file) = relfilenode(oid) {
                    if file != file_before {
                        rewrites.push(relation_name(oid));
                        self.known.insert(oid, file);
                    }
                }
            }
        }
        locks.sort();
        rewrites.sort();
        taken.sort_by_key(|&(oid, _)| oid.to_u32());
        // A relation scanned is locked, so the held ones are all that can have changed; one
        // created by the statement counts from zero.
        let mut rows_scanned = 0;
        for (&oid, &(_, index)) in &held {
            let now = scan_count(oid, index);
            let before = self.counted.insert(oid, now).unwrap_or(0);
            rows_scanned += now - before;
        }
        self.held = held;
        Observed {
            locks,
            rewrites,
            rows_scanned,
            taken,
        }
    }

    /// Relation locks of this backend in this database on user relations (indexes too):
    /// oid -> (modes, is an index).
    fn held_relations(&self) -> HashMap<pg_sys::Oid, (u32, bool)> {
        let mut out: HashMap<pg_sys::Oid, (u32, bool)> = HashMap::new();
        for (oid, mask) in own_relation_locks() {
            if let Some(index) = self.user_relation(oid) {
                out.entry(oid).or_insert((0, index)).0 |= mask;
            }
        }
        out
    }

    /// For a relation outside the skipped schemas: whether it is an index. None otherwise.
    fn user_relation(&self, oid: pg_sys::Oid) -> Option<bool> {
        // SAFETY: plain catalog lookups; InvalidOid / '\0' for a relation that is gone.
        let (namespace, relkind) = unsafe {
            (
                pg_sys::get_rel_namespace(oid),
                pg_sys::get_rel_relkind(oid) as u8,
            )
        };
        (namespace != pg_sys::InvalidOid && !self.skipped.contains(&namespace)).then_some(
            relkind == pg_sys::RELKIND_INDEX || relkind == pg_sys::RELKIND_PARTITIONED_INDEX,
        )
    }
}

/// Tuples read by scans of `oid` as the statistics count them: sequential and bitmap reads of
/// a table plus fetches through an index (pg_stat_xact_user_tables' seq_tup_read and
/// idx_tup_fetch).
fn scan_count(oid: pg_sys::Oid, index: bool) -> i64 {
    let datum = oid.into_datum();
    // SAFETY: the xact statistics functions take a relation oid and return an int8.
    let count = |f: unsafe fn(pg_sys::FunctionCallInfo) -> pg_sys::Datum| unsafe {
        direct_function_call::<i64>(f, &[datum]).unwrap_or(0)
    };
    let fetched = count(pg_sys::pg_stat_get_xact_tuples_fetched);
    if index {
        fetched
    } else {
        fetched + count(pg_sys::pg_stat_get_xact_tuples_returned)
    }
}

/// The relation's relfilenode now (0 for a relation without storage), None if it is gone.
fn relfilenode(oid: pg_sys::Oid) -> Option<u32> {
    // SAFETY: a syscache lookup by oid; the tuple's struct is read before it is released.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, oid.into());
        if tuple.is_null() {
            return None;
        }
        let class = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple);
        let file = (*class).relfilenode.to_u32();
        pg_sys::ReleaseSysCache(tuple);
        Some(file)
    }
}

/// `oid::regclass::text`: schema-qualified unless the schema is on the search_path.
fn relation_name(oid: pg_sys::Oid) -> String {
    // SAFETY: regclassout takes an oid and returns a C string in the current memory context.
    unsafe { direct_function_call::<&CStr>(pg_sys::regclassout, &[oid.into_datum()]) }
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| oid.to_u32().to_string())
}

/// This backend's relation locks in its own database: (relation, bit mask of the modes held).
/// A relation may appear twice (a fast-path and a main-table entry); callers OR the masks.
///
/// Read from this backend's own lock records, as `LockReleaseAll` walks them, not from
/// `GetLockStatusData`, which copies every backend's locks and walks the whole shared lock
/// table: `plan()` reads its locks after every statement, and that copy was a quarter of its
/// time on a script of single-row INSERTs.
pub fn own_relation_locks() -> Vec<(pg_sys::Oid, u32)> {
    let mut out = Vec::new();
    // SAFETY: MyProc is this backend's PGPROC. Its fast-path slots are read under its
    // fpInfoLock and each lock-manager partition's list of its PROCLOCKs under the partition's
    // lock, as lock.c reads them; another backend moves a fast-path lock into the main table
    // holding both, so reading the fast-path slots first cannot miss a lock being moved.
    // Nothing here raises while an LWLock is held.
    unsafe {
        let proc_ = pg_sys::MyProc;
        let database = pg_sys::MyDatabaseId.to_u32();
        pg_sys::LWLockAcquire(&raw mut (*proc_).fpInfoLock, pg_sys::LWLockMode::LW_SHARED);
        for (bits, relation) in fast_path_slots(proc_) {
            // Three bits per slot for the three weak modes, lowest bit = mode 1.
            let held = (bits & 0b111) as u32;
            if held != 0 {
                out.push((relation, held << 1));
            }
        }
        pg_sys::LWLockRelease(&raw mut (*proc_).fpInfoLock);

        for partition in 0..pg_sys::NUM_LOCK_PARTITIONS as usize {
            let lock = &raw mut (*pg_sys::MainLWLockArray
                .add(pg_sys::LOCK_MANAGER_LWLOCK_OFFSET as usize + partition))
            .lock;
            pg_sys::LWLockAcquire(lock, pg_sys::LWLockMode::LW_SHARED);
            let head = proc_lock_list(proc_, partition);
            let mut node = (*head).next;
            while !node.is_null() && node != head {
                let proclock = node
                    .byte_sub(std::mem::offset_of!(pg_sys::PROCLOCK, procLink))
                    .cast::<pg_sys::PROCLOCK>();
                let tag = &(*(*proclock).tag.myLock).tag;
                if (*proclock).holdMask != 0
                    && tag.locktag_type == pg_sys::LockTagType::LOCKTAG_RELATION as u8
                    && tag.locktag_field1 == database
                {
                    out.push((
                        pg_sys::Oid::from(tag.locktag_field2),
                        (*proclock).holdMask as u32,
                    ));
                }
                node = (*node).next;
            }
            pg_sys::LWLockRelease(lock);
        }
    }
    out
}

/// The fast-path lock slots of `proc_` in use: (the slot's three mode bits, relation).
///
/// # Safety
/// `proc_` is a live PGPROC whose fpInfoLock the caller holds.
#[cfg(feature = "pg15")]
unsafe fn fast_path_slots(proc_: *mut pg_sys::PGPROC) -> Vec<(u64, pg_sys::Oid)> {
    // SAFETY: per the contract; PostgreSQL 15 keeps 16 slots in the PGPROC itself.
    let (bits, relations) = unsafe { ((*proc_).fpLockBits, (*proc_).fpRelId) };
    (0..pg_sys::FP_LOCK_SLOTS_PER_BACKEND as usize)
        .map(|slot| ((bits >> (3 * slot)) & 0b111, relations[slot]))
        .filter(|&(b, _)| b != 0)
        .collect()
}

/// The fast-path lock slots of `proc_` in use: (the slot's three mode bits, relation).
///
/// # Safety
/// `proc_` is a live PGPROC whose fpInfoLock the caller holds.
#[cfg(feature = "pg18")]
unsafe fn fast_path_slots(proc_: *mut pg_sys::PGPROC) -> Vec<(u64, pg_sys::Oid)> {
    let per_group = pg_sys::FP_LOCK_SLOTS_PER_GROUP as usize;
    let mut out = Vec::new();
    // SAFETY: per the contract; PostgreSQL 18 keeps FastPathLockGroupsPerBackend groups of 16
    // slots, one 64-bit word of mode bits per group.
    unsafe {
        for group in 0..pg_sys::FastPathLockGroupsPerBackend as usize {
            let bits = *(*proc_).fpLockBits.add(group);
            for index in 0..per_group {
                let slot_bits = (bits >> (3 * index)) & 0b111;
                if slot_bits != 0 {
                    out.push((slot_bits, *(*proc_).fpRelId.add(group * per_group + index)));
                }
            }
        }
    }
    out
}

/// The head of `proc_`'s list of PROCLOCKs in lock-manager partition `partition`.
///
/// # Safety
/// `proc_` is a live PGPROC; `partition` < NUM_LOCK_PARTITIONS.
#[cfg(feature = "pg15")]
unsafe fn proc_lock_list(proc_: *mut pg_sys::PGPROC, partition: usize) -> *mut pg_sys::SHM_QUEUE {
    // SAFETY: per the contract.
    unsafe { &raw mut (*proc_).myProcLocks[partition] }
}

/// The head of `proc_`'s list of PROCLOCKs in lock-manager partition `partition`.
///
/// # Safety
/// `proc_` is a live PGPROC; `partition` < NUM_LOCK_PARTITIONS.
#[cfg(feature = "pg18")]
unsafe fn proc_lock_list(proc_: *mut pg_sys::PGPROC, partition: usize) -> *mut pg_sys::dlist_node {
    // SAFETY: per the contract.
    unsafe { &raw mut (*proc_).myProcLocks[partition].head }
}
