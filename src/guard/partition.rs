//! Partitioned and inherited tables: which tables a statement on a parent reaches, and what
//! `ATTACH PARTITION` scans.
//!
//! `ATTACH PARTITION` scans the partition unless a valid constraint of it implies the
//! partition's bound, and scans the DEFAULT partition unless its constraints exclude the new
//! bound. The guard asks the server's own predicate logic (`PartConstraintImpliedByRelConstraint`
//! over the bound's qual from `get_qual_from_partbound`), under conditions that keep it from
//! running anything user-defined: the parent is not itself a partition (its own partition
//! constraint would need its parent locked), the key is plain columns of built-in types and
//! operator families, the bound is literals, and the constraints involved use only built-in
//! functions, operators and types. Outside those, it assumes the scan (and says so).

use crate::pg::list::items as list_items;
use crate::pg::partitions;
use crate::pg::subxact;
use pgrx::pg_sys;

/// The first OID of objects created after initdb (access/transam.h).
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// Every table with storage a statement on `relid` recursing into children reaches, relid
/// first (itself only if it has storage); no lock is taken.
pub fn members(relid: pg_sys::Oid, recurse: bool) -> Vec<pg_sys::Oid> {
    if !recurse {
        return vec![relid];
    }
    partitions::all_inheritors(relid)
}

/// What `ATTACH PARTITION` will scan.
pub struct AttachScan {
    pub partition: pg_sys::Oid,
    pub scans_partition: bool,
    pub default_partition: Option<pg_sys::Oid>,
    pub scans_default: bool,
    pub bound_check: Option<String>,
}

unsafe fn is_literal(node: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    if node.is_null() {
        return false;
    }
    // SAFETY: nodes of a raw partition bound; each branch casts to its tag's struct.
    unsafe {
        match (*node).type_ {
            T_A_Const => true,
            // MINVALUE / MAXVALUE are column references in the raw tree.
            T_ColumnRef => {
                let fields = list_items::<pg_sys::Node>((*(node as *mut pg_sys::ColumnRef)).fields);
                fields.len() == 1 && (*fields[0]).type_ == T_String && {
                    let s = std::ffi::CStr::from_ptr((*(fields[0] as *mut pg_sys::String)).sval);
                    matches!(s.to_str(), Ok("minvalue" | "maxvalue"))
                }
            }
            T_TypeCast => {
                let cast = node as *mut pg_sys::TypeCast;
                let t = pg_sys::LookupTypeNameOid(std::ptr::null_mut(), (*cast).typeName, true);
                is_literal((*cast).arg)
                    && t != pg_sys::InvalidOid
                    && t.to_u32() < FIRST_NORMAL_OBJECT_ID
                    && pg_sys::get_typtype(t) as u8 != pg_sys::TYPTYPE_DOMAIN
            }
            _ => false,
        }
    }
}

unsafe fn bound_is_literal(spec: *mut pg_sys::PartitionBoundSpec) -> bool {
    // SAFETY: spec is a raw PartitionBoundSpec.
    unsafe {
        let datums = [(*spec).listdatums, (*spec).lowerdatums, (*spec).upperdatums];
        datums.iter().all(|l| {
            list_items::<pg_sys::Node>(*l).into_iter().all(|n| {
                // A list bound holds expressions; range bounds too (PartitionRangeDatum only
                // after transformation).
                is_literal(n)
            })
        })
    }
}

fn key_is_builtin(parent: pg_sys::Oid) -> bool {
    crate::pg::query::one::<bool>(
        include_str!("../queries/partition_key_builtin.sql"),
        &[parent.into()],
    ) == Some(true)
}

fn checks_are_builtin(relid: pg_sys::Oid) -> bool {
    crate::pg::query::one::<bool>(
        include_str!("../queries/user_defined_in_checks.sql"),
        &[relid.into()],
    ) == Some(false)
}

/// True if the valid constraints of `rel` imply `qual` (in the parent's attribute numbers).
unsafe fn implied(
    rel: pg_sys::Relation,
    parent: pg_sys::Relation,
    qual: *mut pg_sys::List,
) -> bool {
    // SAFETY: both relations are open relcache entries; qual is a list of expressions over the
    // parent's columns (varno 1).
    unsafe {
        if !checks_are_builtin((*rel).rd_id) {
            return false;
        }
        let mapped = partitions::map_varattnos(qual, rel, parent);
        pg_sys::PartConstraintImpliedByRelConstraint(rel, mapped)
    }
}

/// What attaching `cmd`'s partition to `parent` scans; None if the partition does not exist.
///
/// # Safety
/// `cmd` is the PartitionCmd of an AT_AttachPartition command of a raw parse tree.
pub unsafe fn attach(parent: pg_sys::Oid, cmd: *mut pg_sys::PartitionCmd) -> Option<AttachScan> {
    // SAFETY: NoLock lookups; relcache entries are held until closed below.
    unsafe {
        let partition = pg_sys::RangeVarGetRelidExtended(
            (*cmd).name,
            pg_sys::NoLock as _,
            pg_sys::RVROption::RVR_MISSING_OK as _,
            None,
            std::ptr::null_mut(),
        );
        if partition == pg_sys::InvalidOid {
            return None;
        }
        let default_partition = partitions::default_partition(parent).filter(|d| *d != partition);
        // Assume the scans unless they are proven unnecessary.
        let mut out = AttachScan {
            partition,
            scans_partition: true,
            default_partition,
            scans_default: default_partition.is_some(),
            bound_check: None,
        };
        let bound = (*cmd).bound;
        if bound.is_null() || !bound_is_literal(bound) {
            return Some(out);
        }
        let parent_rel = pg_sys::RelationIdGetRelation(parent);
        let part_rel = pg_sys::RelationIdGetRelation(partition);
        let default_rel = default_partition
            .map(|d| pg_sys::RelationIdGetRelation(d))
            .unwrap_or(std::ptr::null_mut());
        if !parent_rel.is_null()
            && !part_rel.is_null()
            && (*(*parent_rel).rd_rel).relkind as u8 == pg_sys::RELKIND_PARTITIONED_TABLE
            && !(*(*parent_rel).rd_rel).relispartition
            && key_is_builtin(parent)
        {
            // The statement will fail by itself on a bound that does not transform: keep the
            // assumption then.
            let proof = subxact::run(|| {
                let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
                let spec = pg_sys::copyObjectImpl(bound.cast()) as *mut pg_sys::PartitionBoundSpec;
                let spec = partitions::transform_bound(pstate, parent_rel, spec);
                let qual = pg_sys::get_qual_from_partbound(parent_rel, spec);
                if qual.is_null() {
                    return (false, false, None);
                }
                let context = pg_sys::deparse_context_for(
                    (*(*parent_rel).rd_rel).relname.data.as_ptr(),
                    parent,
                );
                let check = pg_sys::deparse_expression(
                    pg_sys::make_ands_explicit(qual).cast(),
                    context,
                    false,
                    false,
                );
                let check = std::ffi::CStr::from_ptr(check)
                    .to_string_lossy()
                    .into_owned();
                let folded = pg_sys::eval_const_expressions(
                    std::ptr::null_mut(),
                    pg_sys::make_ands_explicit(qual).cast(),
                );
                let part_qual = pg_sys::lappend(std::ptr::null_mut(), folded.cast());
                let scans_partition = !implied(part_rel, parent_rel, part_qual);
                let scans_default = !default_rel.is_null() && {
                    let def_qual = partitions::proposed_default_constraint(qual);
                    !implied(default_rel, parent_rel, def_qual)
                };
                (scans_partition, scans_default, Some(check))
            });
            if let Ok((scans_partition, scans_default, check)) = proof {
                out.scans_partition = scans_partition;
                out.scans_default = scans_default && default_partition.is_some();
                out.bound_check = check;
            }
        }
        for rel in [parent_rel, part_rel, default_rel] {
            if !rel.is_null() {
                pg_sys::RelationClose(rel);
            }
        }
        Some(out)
    }
}
