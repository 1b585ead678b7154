//! `ALTER COLUMN ... TYPE`: will PostgreSQL rewrite the table, and if not, which indexes does
//! it still rebuild and which CHECK constraints does it re-check? The answer is the server's
//! own: the expression ALTER TABLE would build (the column, or the `USING` expression, coerced
//! to the new type by `coerce_to_target_type`), walked as `ATColumnChangeRequiresRewrite`
//! walks it, with the planner's length-coercion simplification decided by
//! [`rules::typmod_change_is_free`] and the timestamp/timestamptz rule by
//! `TimestampTimestampTzRequiresRewrite()` (the session's TimeZone); then the index reuse test
//! of `CheckIndexCompatible` ([`rules::index_rebuilt`]).
//!
//! Nothing user-defined is evaluated: a `USING` expression is only followed when it is the
//! column itself or casts of it (anything else is a rewrite, as PostgreSQL decides too), and
//! building a coercion of a `Var` looks casts up without running them. No lock is taken.

use migrate_core::rules::{self, IndexKey, TypeChange};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::pg::list::items as list_items;

/// pg_proc OIDs of timestamptz(timestamp) and timestamp(timestamptz) (fmgroids.h, stable).
const F_TIMESTAMP_TIMESTAMPTZ: u32 = 2028;
const F_TIMESTAMPTZ_TIMESTAMP: u32 = 2027;

struct Column {
    attnum: i16,
    type_oid: pg_sys::Oid,
    typmod: i32,
    collation: pg_sys::Oid,
}

fn column(relid: pg_sys::Oid, name: &str) -> Option<Column> {
    Spi::connect(|client| {
        let rows = client
            .select(
                "SELECT attnum, atttypid, atttypmod, attcollation FROM pg_catalog.pg_attribute \
                 WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attname OPERATOR(pg_catalog.=) $2 \
                   AND NOT attisdropped",
                None,
                &[relid.into(), name.into()],
            )
            .ok()?;
        let row = rows.into_iter().next()?;
        Some(Column {
            attnum: row.get::<i16>(1).ok()??,
            type_oid: row.get::<pg_sys::Oid>(2).ok()??,
            typmod: row.get::<i32>(3).ok()??,
            collation: row.get::<pg_sys::Oid>(4).ok()??,
        })
    })
}

unsafe fn tag(node: *mut pg_sys::Node) -> pg_sys::NodeTag {
    // SAFETY: every Node starts with its tag (the caller passes a non-NULL node).
    unsafe { (*node).type_ }
}

/// The `USING` expression as ALTER TABLE would see it, if it is the column itself, or casts
/// of it (`"note"::text`, `CAST(note AS text)`); None for anything else (PostgreSQL rewrites
/// for any other expression too, except ones no migration writes).
unsafe fn using_expr(
    raw: *mut pg_sys::Node,
    column: &str,
    var: *mut pg_sys::Node,
) -> Option<*mut pg_sys::Node> {
    use pg_sys::NodeTag::*;
    // SAFETY: raw is a node of a raw parse tree; each branch casts it to its tag's struct.
    unsafe {
        if raw.is_null() {
            return None;
        }
        match tag(raw) {
            T_ColumnRef => {
                let fields = list_items::<pg_sys::Node>((*(raw as *mut pg_sys::ColumnRef)).fields);
                let last = *fields.last()?;
                if tag(last) != T_String {
                    return None;
                }
                let name = std::ffi::CStr::from_ptr((*(last as *mut pg_sys::String)).sval);
                (name.to_str().ok()? == column).then_some(var)
            }
            T_TypeCast => {
                let cast = raw as *mut pg_sys::TypeCast;
                let inner = using_expr((*cast).arg, column, var)?;
                let (mut typid, mut typmod) = (pg_sys::InvalidOid, -1);
                pg_sys::typenameTypeIdAndMod(
                    std::ptr::null_mut(),
                    (*cast).typeName,
                    &mut typid,
                    &mut typmod,
                );
                let out = pg_sys::coerce_to_target_type(
                    std::ptr::null_mut(),
                    inner,
                    pg_sys::exprType(inner),
                    typid,
                    typmod,
                    pg_sys::CoercionContext::COERCION_EXPLICIT,
                    pg_sys::CoercionForm::COERCE_EXPLICIT_CAST,
                    -1,
                );
                (!out.is_null()).then_some(out)
            }
            _ => None,
        }
    }
}

/// ATColumnChangeRequiresRewrite over the coerced expression: (rewrite, depends on TimeZone).
unsafe fn requires_rewrite(mut expr: *mut pg_sys::Node, attnum: i16) -> (bool, bool) {
    use pg_sys::NodeTag::*;
    let mut timezone_dependent = false;
    // SAFETY: expr is an expression tree built by coerce_to_target_type; each branch casts it
    // to the struct its tag names.
    unsafe {
        loop {
            if expr.is_null() {
                return (true, timezone_dependent);
            }
            match tag(expr) {
                T_Var if (*(expr as *mut pg_sys::Var)).varattno == attnum => {
                    return (false, timezone_dependent)
                }
                T_RelabelType => expr = (*(expr as *mut pg_sys::RelabelType)).arg.cast(),
                T_CoerceToDomain => {
                    let d = expr as *mut pg_sys::CoerceToDomain;
                    if domain_has_constraints((*d).resulttype) {
                        return (true, timezone_dependent);
                    }
                    expr = (*d).arg.cast();
                }
                T_FuncExpr => {
                    let f = expr as *mut pg_sys::FuncExpr;
                    let args = list_items::<pg_sys::Node>((*f).args);
                    let funcid = (*f).funcid.to_u32();
                    if funcid == F_TIMESTAMP_TIMESTAMPTZ || funcid == F_TIMESTAMPTZ_TIMESTAMP {
                        timezone_dependent = true;
                        if pg_sys::TimestampTimestampTzRequiresRewrite() {
                            return (true, true);
                        }
                        expr = *args.first().unwrap_or(&std::ptr::null_mut());
                        continue;
                    }
                    // A length coercion (varchar(n), numeric(p,s), timestamp(p), ...): the
                    // planner's support function turns it into a relabel when it cannot fail.
                    let length_coercion = args.len() >= 2
                        && tag(args[1]) == T_Const
                        && !(*(args[1] as *mut pg_sys::Const)).constisnull
                        && (*f).funcresulttype == pg_sys::exprType(args[0])
                        && pg_sys::get_func_support((*f).funcid) != pg_sys::InvalidOid;
                    if !length_coercion {
                        return (true, timezone_dependent);
                    }
                    let new_typmod = (*(args[1] as *mut pg_sys::Const)).constvalue.value() as i32;
                    let old_typmod = pg_sys::exprTypmod(args[0]);
                    if !rules::typmod_change_is_free(
                        (*f).funcresulttype.to_u32(),
                        old_typmod,
                        new_typmod,
                    ) {
                        return (true, timezone_dependent);
                    }
                    expr = args[0];
                }
                _ => return (true, timezone_dependent),
            }
        }
    }
}

/// The indexes rebuilt and CHECK constraints re-checked by a type change without a rewrite,
/// over every table the statement reaches.
fn rebuilt(
    members: &[pg_sys::Oid],
    column: &str,
    new_type: pg_sys::Oid,
    new_collation: pg_sys::Oid,
) -> Vec<String> {
    let rows: Vec<(
        String,
        String,
        pg_sys::Oid,
        pg_sys::Oid,
        pg_sys::Oid,
        pg_sys::Oid,
        pg_sys::Oid,
    )> = Spi::connect(|client| {
        let Ok(rows) = client.select(
            include_str!("../queries/type_change_dependents.sql"),
            None,
            &[members.to_vec().into(), column.into()],
        ) else {
            return Vec::new();
        };
        rows.into_iter()
            .filter_map(|r| {
                Some((
                    r.get::<String>(1).ok()??,
                    r.get::<String>(2).ok()??,
                    r.get::<pg_sys::Oid>(3).ok()??,
                    r.get::<pg_sys::Oid>(4).ok()??,
                    r.get::<pg_sys::Oid>(5).ok()??,
                    r.get::<pg_sys::Oid>(6).ok()??,
                    r.get::<pg_sys::Oid>(7).ok()??,
                ))
            })
            .collect()
    });
    let mut out: Vec<String> = Vec::new();
    let mut keys: Vec<(String, IndexKey)> = Vec::new();
    for (kind, name, am, opclass, collation, old_type, old_collation) in rows {
        match kind.as_str() {
            "key" => {
                // SAFETY: catalog lookups of the operator classes for the access method.
                let (old_default, new_default, polymorphic) = unsafe {
                    let new_default = pg_sys::GetDefaultOpClass(new_type, am);
                    let input = if new_default == pg_sys::InvalidOid {
                        pg_sys::InvalidOid
                    } else {
                        pg_sys::get_opclass_input_type(new_default)
                    };
                    (
                        pg_sys::GetDefaultOpClass(old_type, am),
                        new_default,
                        is_polymorphic(input),
                    )
                };
                keys.push((
                    name,
                    IndexKey {
                        opclass: opclass.to_u32(),
                        old_default_opclass: old_default.to_u32(),
                        new_default_opclass: new_default.to_u32(),
                        new_opclass_polymorphic: polymorphic,
                        type_changes: old_type != new_type,
                        collation: collation.to_u32(),
                        old_column_collation: old_collation.to_u32(),
                        new_column_collation: new_collation.to_u32(),
                    },
                ));
            }
            "expr" => out.push(format!("index {name}")),
            _ => out.push(format!("CHECK {name}")),
        }
    }
    let mut names: Vec<&String> = keys.iter().map(|(n, _)| n).collect();
    names.dedup();
    for name in names {
        let of: Vec<IndexKey> = keys
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
            .collect();
        if rules::index_rebuilt(false, &of) {
            out.push(format!("index {name}"));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn is_polymorphic(t: pg_sys::Oid) -> bool {
    // anyelement, anyarray, anynonarray, anyenum, anyrange, anymultirange, anycompatible...
    const POLYMORPHIC: &[u32] = &[
        2283, 2277, 2776, 3500, 3831, 4537, 5077, 5078, 5079, 5080, 4538,
    ];
    POLYMORPHIC.contains(&t.to_u32())
}

/// What `ALTER TABLE ... ALTER COLUMN column TYPE ...` (`def`) does to `relid` and the tables
/// it reaches (`members`, relid first). None if the column does not exist (the statement fails
/// by itself). Errors (an unknown type) propagate: the statement would fail with them too.
///
/// # Safety
/// `def` is the ColumnDef of an AT_AlterColumnType command of a raw parse tree.
pub unsafe fn analyse(
    relid: pg_sys::Oid,
    members: &[pg_sys::Oid],
    column_name: &str,
    def: *mut pg_sys::ColumnDef,
) -> Option<(String, TypeChange)> {
    let col = column(relid, column_name)?;
    // SAFETY: def comes from the parse tree; the calls build nodes in the current memory
    // context and look up the catalog.
    unsafe {
        let (mut typid, mut typmod) = (pg_sys::InvalidOid, -1);
        pg_sys::typenameTypeIdAndMod(
            std::ptr::null_mut(),
            (*def).typeName,
            &mut typid,
            &mut typmod,
        );
        let new_type = pgrx::pg_sys::format_type_with_typemod(typid, typmod);
        let new_type = std::ffi::CStr::from_ptr(new_type)
            .to_string_lossy()
            .into_owned();
        let var = pg_sys::makeVar(1, col.attnum, col.type_oid, col.typmod, col.collation, 0)
            as *mut pg_sys::Node;
        let expr = if (*def).raw_default.is_null() {
            Some(var)
        } else {
            using_expr((*def).raw_default, column_name, var)
        };
        let coerced = expr.map(|e| {
            pg_sys::coerce_to_target_type(
                std::ptr::null_mut(),
                e,
                pg_sys::exprType(e),
                typid,
                typmod,
                pg_sys::CoercionContext::COERCION_ASSIGNMENT,
                pg_sys::CoercionForm::COERCE_IMPLICIT_CAST,
                -1,
            )
        });
        let (rewrite, timezone_dependent) = match coerced {
            Some(e) if !e.is_null() => requires_rewrite(e, col.attnum),
            _ => (true, false),
        };
        let rebuilt = if rewrite {
            Vec::new()
        } else {
            let collation = pg_sys::GetColumnDefCollation(std::ptr::null_mut(), def, typid);
            rebuilt(members, column_name, typid, collation)
        };
        Some((
            new_type,
            TypeChange {
                rewrite,
                timezone_dependent,
                rebuilt,
            },
        ))
    }
}

/// PostgreSQL's `DomainHasConstraints()`, from the catalog: loading the type cache entry folds
/// the domain's CHECK expressions, which could run a function the domain's owner wrote.
fn domain_has_constraints(domain: pg_sys::Oid) -> bool {
    crate::pg::query::required::<bool>(
        include_str!("../queries/domain_has_constraints.sql"),
        &[domain.into()],
    )
}
