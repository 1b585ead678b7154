//! Partitioning and inheritance internals that pgrx does not bind (catalog/pg_inherits.h,
//! catalog/partition.h, utils/partcache.h, parser/parse_utilcmd.h): the same signatures in
//! PostgreSQL 15 and 18. Each call goes through `pg_guard_ffi_boundary`, so an ERROR they
//! raise becomes a Rust panic pgrx turns back into the ERROR.

use pgrx::pg_sys;

mod ffi {
    use pgrx::pg_sys::{List, Oid, ParseState, PartitionBoundSpec, Relation, LOCKMODE};
    use std::ffi::c_int;
    extern "C-unwind" {
        pub fn find_all_inheritors(
            relid: Oid,
            lockmode: LOCKMODE,
            numparents: *mut *mut List,
        ) -> *mut List;
        pub fn map_partition_varattnos(
            expr: *mut List,
            fromrel_varno: c_int,
            to_rel: Relation,
            from_rel: Relation,
        ) -> *mut List;
        pub fn get_default_partition_oid(parent: Oid) -> Oid;
        pub fn transformPartitionBound(
            pstate: *mut ParseState,
            parent: Relation,
            spec: *mut PartitionBoundSpec,
        ) -> *mut PartitionBoundSpec;
        pub fn get_proposed_default_constraint(new_part_constraints: *mut List) -> *mut List;
    }
}

/// Every relation inheriting from `relid` (partitions and inheritance children, recursively),
/// relid first, read from pg_inherits without taking a lock.
pub fn all_inheritors(relid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    // SAFETY: with NoLock, find_all_inheritors only reads pg_inherits; the List it returns
    // holds OIDs.
    unsafe {
        let list = pg_sys::ffi::pg_guard_ffi_boundary(|| {
            ffi::find_all_inheritors(relid, pg_sys::NoLock as _, std::ptr::null_mut())
        });
        let n = if list.is_null() {
            0
        } else {
            (*list).length as usize
        };
        (0..n)
            .map(|i| (*(*list).elements.add(i)).oid_value)
            .collect()
    }
}

/// Maps Vars of `from` (varno 1) in `expr` to `to`'s attribute numbers.
///
/// # Safety
/// `expr` is a list of expressions over `from`; both relations are open.
pub unsafe fn map_varattnos(
    expr: *mut pg_sys::List,
    to: pg_sys::Relation,
    from: pg_sys::Relation,
) -> *mut pg_sys::List {
    // SAFETY: the caller's promise.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::map_partition_varattnos(expr, 1, to, from))
    }
}

/// The DEFAULT partition of a partitioned table, if it has one (a syscache read, no lock).
pub fn default_partition(parent: pg_sys::Oid) -> Option<pg_sys::Oid> {
    // SAFETY: reads pg_partitioned_table through the syscache.
    let oid =
        unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::get_default_partition_oid(parent)) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// A raw partition bound transformed against its parent's key: literals coerced to the key
/// types (the caller makes sure that runs only built-in input functions).
///
/// # Safety
/// `spec` is a copy of a raw bound; `parent` an open partitioned table.
pub unsafe fn transform_bound(
    pstate: *mut pg_sys::ParseState,
    parent: pg_sys::Relation,
    spec: *mut pg_sys::PartitionBoundSpec,
) -> *mut pg_sys::PartitionBoundSpec {
    // SAFETY: the caller's promise.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| ffi::transformPartitionBound(pstate, parent, spec))
    }
}

/// The constraint the DEFAULT partition's rows must satisfy once a partition with
/// `new_part_constraints` is attached: NOT (the new bound).
///
/// # Safety
/// `new_part_constraints` is the qual of a transformed bound.
pub unsafe fn proposed_default_constraint(
    new_part_constraints: *mut pg_sys::List,
) -> *mut pg_sys::List {
    // SAFETY: the caller's promise.
    unsafe {
        pg_sys::ffi::pg_guard_ffi_boundary(|| {
            ffi::get_proposed_default_constraint(new_part_constraints)
        })
    }
}
