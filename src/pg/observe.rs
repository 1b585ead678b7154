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
        }
    }

    /// Relation locks of this backend in this database on user relations (indexes too), from
    /// the lock manager: oid -> (modes, is an index).
    fn held_relations(&self) -> HashMap<pg_sys::Oid, (u32, bool)> {
        let mut out: HashMap<pg_sys::Oid, (u32, bool)> = HashMap::new();
        let me = super::backend::pid();
        let database = super::backend::database();
        // SAFETY: GetLockStatusData returns a palloc'd copy of the lock table (nelements
        // entries), read here and freed; tags are read as relation tags only after their type
        // is checked.
        unsafe {
            let data = pg_sys::GetLockStatusData();
            let entries = std::slice::from_raw_parts((*data).locks, (*data).nelements as usize);
            for lock in entries {
                let tag = &lock.locktag;
                if lock.pid != me
                    || lock.holdMask == 0
                    || tag.locktag_type != pg_sys::LockTagType::LOCKTAG_RELATION as u8
                    || tag.locktag_field1 != database.to_u32()
                {
                    continue;
                }
                let oid = pg_sys::Oid::from(tag.locktag_field2);
                if let Some(index) = self.user_relation(oid) {
                    out.entry(oid).or_insert((0, index)).0 |= lock.holdMask as u32;
                }
            }
            pg_sys::pfree((*data).locks.cast());
            pg_sys::pfree(data.cast());
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
