//! Dependent views rebuilt around a column change. PostgreSQL refuses `ALTER COLUMN ... TYPE`
//! on a column a view or rule uses; this module saves every view and materialized view that
//! depends on the changed columns (and every view on those, transitively), drops them, lets the
//! change run, and recreates them in the same transaction, identical but for the new type:
//! owner, options (`security_barrier`, `security_invoker`, `check_option`, storage
//! parameters), grants (relation and column, each replayed by its grantor), comments (view,
//! columns, indexes), a materialized view's tablespace and indexes, and its data (REFRESHed
//! only if it was populated). Default privileges of the role that recreates a view are undone.
//!
//! Who runs what: everything runs as the statement's user (the event trigger is not SECURITY
//! DEFINER), who must be able to act as each view's owner, create in its schema and hand it to
//! the owner, checked before anything is dropped (42501). A view is created with
//! `pg_get_viewdef()`'s text, deparsed and parsed again under the same pinned settings
//! ([`DEPARSE_SETTINGS`]: `search_path = pg_catalog, pg_temp`, so every other name is
//! schema-qualified and resolves to the same object), as its owner (a local user-id switch,
//! still security-restricted). Creating a view runs no query, but parse analysis reads each
//! literal with its type's input function, and the input of an array, range or composite of a
//! domain evaluates the domain's CHECK, which can call any function of the view's author: as
//! the statement's user (a superuser's migration) that made any role with a view on the table
//! a superuser (pg_test/sql/adversarial_views.sql). A materialized view's indexes are created
//! as its owner for the same reason. A materialized view is created
//! `WITH NO DATA` and filled by `REFRESH`, which runs its query as the owner in a
//! security-restricted operation, never as the statement's user. Everything runs inside
//! [`crate::pg::security::restricted`]: no SET ROLE, no temporary objects, no setting left.
//!
//! What is not recreated is refused up front (0A000), before anything is dropped: INSTEAD OF
//! triggers and rules on a view, column defaults, extended statistics, security labels, and a
//! rule on a table that uses the column. Objects that depend on a view in other ways (a
//! function's SQL body) make PostgreSQL's own DROP fail (2BP01), with a HINT naming the view.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, quote_qualified_identifier};
use pgrx::PgSqlErrorCode;

use crate::error::{Result, UserError};

/// The settings views are deparsed and parsed again with: the pinned search_path (names of
/// anything outside pg_catalog come out schema-qualified), and the output styles pg_dump uses
/// so that literals read back as the same values.
pub const DEPARSE_SETTINGS: &[(&CStr, &CStr)] = &[
    (c"search_path", c"pg_catalog, pg_temp"),
    (c"DateStyle", c"ISO"),
    (c"IntervalStyle", c"postgres"),
    (c"extra_float_digits", c"3"),
    (c"standard_conforming_strings", c"on"),
];

/// The role option ALTER ... OWNER TO requires of the statement's user on the new owner.
#[cfg(feature = "pg15")]
const OWNER_HANDOVER: &str = "MEMBER";
#[cfg(not(feature = "pg15"))]
const OWNER_HANDOVER: &str = "SET";

/// One privilege from an ACL, replayed as a GRANT by its grantor.
#[derive(Debug, Clone)]
struct Grant {
    grantor: pg_sys::Oid,
    /// InvalidOid: PUBLIC.
    grantee: pg_sys::Oid,
    privilege: String,
    grantable: bool,
    /// None: the relation itself.
    column: Option<String>,
}

/// A matview index: its CREATE INDEX text, qualified name and comment.
#[derive(Debug, Clone)]
struct Index {
    definition: String,
    name: String,
    comment: Option<String>,
}

/// Everything needed to recreate one view or materialized view as it was.
#[derive(Debug, Clone)]
pub struct SavedView {
    pub oid: pg_sys::Oid,
    pub materialized: bool,
    pub schema: String,
    pub name: String,
    owner: String,
    definition: String,
    options: Vec<String>,
    tablespace: Option<String>,
    comment: Option<String>,
    populated: bool,
    acl_set: bool,
    grants: Vec<Grant>,
    owner_revoked: Vec<String>,
    column_comments: Vec<(String, String)>,
    indexes: Vec<Index>,
    /// The functions and operators it called (see [`routines`]).
    routines: Vec<Routine>,
}

/// A function or operator a view calls: `pg_proc:OID` / `pg_operator:OID`, how messages name
/// it, its owner, and whether it is in pg_catalog.
#[derive(Debug, Clone)]
struct Routine {
    key: String,
    what: String,
    owner: pg_sys::Oid,
    builtin: bool,
}

impl SavedView {
    /// `schema.name`, quoted as SQL needs it.
    pub fn qualified(&self) -> String {
        quote_qualified_identifier(&self.schema, &self.name)
    }

    fn keyword(&self) -> &'static str {
        if self.materialized {
            "MATERIALIZED VIEW"
        } else {
            "VIEW"
        }
    }

    /// How messages name it: `view public.v`.
    pub fn describe(&self) -> String {
        format!("{} {}", self.keyword().to_lowercase(), self.qualified())
    }
}

/// The views saved around one change, in dependency order (each after every view it reads).
#[derive(Debug, Clone, Default)]
pub struct SavedViews {
    pub views: Vec<SavedView>,
}

/// Saves, drops, runs `change`, recreates: the whole rebuild around a change of `columns`
/// (attribute numbers) of `table`, for modules that make the change themselves (the contract
/// step of an expand/contract). An error anywhere is returned with nothing recreated; the
/// caller's (sub)transaction abort then restores the dropped views.
pub fn around_column_change<R>(
    table: pg_sys::Oid,
    columns: &[i16],
    change: impl FnOnce() -> Result<R>,
) -> Result<R> {
    let targets: Vec<(pg_sys::Oid, i16)> = columns.iter().map(|&c| (table, c)).collect();
    let saved = save(&targets)?;
    saved.drop_all()?;
    let result = change()?;
    saved.recreate()?;
    Ok(result)
}

/// The attribute numbers of the columns named `names` in each of `tables` (a table and its
/// partitions or inheritance children reach the column by name); missing ones are skipped
/// (the statement reports them itself).
pub fn columns_by_name(tables: &[pg_sys::Oid], names: &[String]) -> Vec<(pg_sys::Oid, i16)> {
    let mut out = Vec::new();
    for &table in tables {
        for name in names {
            let attnum = crate::pg::query::one::<i16>(
                "SELECT attnum FROM pg_catalog.pg_attribute \
                 WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attname OPERATOR(pg_catalog.=) $2 \
                   AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped",
                &[table.into(), name.as_str().into()],
            );
            if let Some(attnum) = attnum {
                out.push((table, attnum));
            }
        }
    }
    out
}

/// Reads, under [`DEPARSE_SETTINGS`], everything needed to recreate the views that depend on
/// `targets` (table, attribute number), and checks that they can be recreated as they are by
/// the current user. Reads catalogs only: changes nothing, takes no lock.
pub fn save(targets: &[(pg_sys::Oid, i16)]) -> Result<SavedViews> {
    if targets.is_empty() {
        return Ok(SavedViews::default());
    }
    crate::pg::security::with_own_settings(DEPARSE_SETTINGS, || {
        let dependents = dependents(targets);
        let mut views = Vec::with_capacity(dependents.len());
        for (oid, is_view) in dependents {
            if !is_view {
                return Err(rule_on_table(oid));
            }
            views.push(read_view(oid)?);
        }
        // Recreating another role's view runs its code here, as that role (the input of its
        // literals, REFRESH): nothing the session holds may be within its reach.
        let me = crate::pg::security::current_user();
        if let Some(other) = views
            .iter()
            .find(|v| crate::pg::security::role_oid(&v.owner) != Some(me))
        {
            crate::pg::security::refuse_exposed_session(
                &format!("rebuilding {} around the column change", other.describe()),
                &quote_identifier(&other.owner),
            );
        }
        Ok(SavedViews { views })
    })
}

/// (view, is a view or matview) in dependency order.
fn dependents(targets: &[(pg_sys::Oid, i16)]) -> Vec<(pg_sys::Oid, bool)> {
    let tables: Vec<pg_sys::Oid> = targets.iter().map(|t| t.0).collect();
    let attnums: Vec<i16> = targets.iter().map(|t| t.1).collect();
    Spi::connect(|client| {
        let rows = client
            .select(
                include_str!("queries/dependent_views.sql"),
                None,
                &[tables.into(), attnums.into()],
            )
            .unwrap_or_else(|e| error!("migrate: reading dependent views failed: {e}"));
        rows.into_iter()
            .map(|row| {
                let oid = row.get::<pg_sys::Oid>(1).ok().flatten();
                let is_view = row.get::<bool>(3).ok().flatten().unwrap_or(false);
                (oid.expect("pg_class oid is not null"), is_view)
            })
            .collect()
    })
}

/// A rule on a table (not a view) uses a changed column: refused, a rule is not rebuilt.
fn rule_on_table(oid: pg_sys::Oid) -> UserError {
    let name = crate::pg::query::one::<String>(
        "SELECT $1::pg_catalog.regclass::pg_catalog.text",
        &[oid.into()],
    )
    .unwrap_or_default();
    UserError::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("a rule on table {name} uses the changed column; rules are not rebuilt"),
    )
    .hint(format!(
        "Drop the rule, change the column, and create the rule again, in one migration (rules on {name} are listed in pg_rules)."
    ))
}

fn text(row: &pgrx::spi::SpiHeapTupleData, i: usize) -> Option<String> {
    row.get::<String>(i).ok().flatten()
}

fn flag(row: &pgrx::spi::SpiHeapTupleData, i: usize) -> bool {
    row.get::<bool>(i).ok().flatten().unwrap_or(false)
}

fn read_view(oid: pg_sys::Oid) -> Result<SavedView> {
    let mut view = Spi::connect(|client| -> Result<SavedView> {
        let rows = client
            .select(
                include_str!("queries/dependent_view.sql"),
                None,
                &[oid.into(), OWNER_HANDOVER.into()],
            )
            .unwrap_or_else(|e| error!("migrate: reading a dependent view failed: {e}"));
        let row = rows
            .into_iter()
            .next()
            .unwrap_or_else(|| error!("migrate: dependent view {oid:?} disappeared"));
        let definition = text(&row, 6).unwrap_or_default();
        let view = SavedView {
            oid,
            materialized: text(&row, 1).as_deref() == Some("m"),
            schema: text(&row, 2).unwrap_or_default(),
            name: text(&row, 3).unwrap_or_default(),
            owner: text(&row, 5).unwrap_or_default(),
            definition: definition
                .trim_end()
                .trim_end_matches(';')
                .trim_end()
                .to_string(),
            options: row.get::<Vec<String>>(7).ok().flatten().unwrap_or_default(),
            comment: text(&row, 8),
            populated: flag(&row, 9),
            tablespace: text(&row, 10),
            acl_set: flag(&row, 11),
            grants: Vec::new(),
            owner_revoked: Vec::new(),
            column_comments: Vec::new(),
            indexes: Vec::new(),
            routines: Vec::new(),
        };
        if let Some(unsupported) = text(&row, 12) {
            return Err(UserError::new(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                format!(
                    "{} depends on the changed column and has {unsupported}, which is not rebuilt",
                    view.describe()
                ),
            )
            .hint(format!(
                "Drop {} and create it again around the change, in the same migration.",
                view.qualified()
            )));
        }
        let checks = [
            (13, "act as its owner"),
            (14, "hand it to its owner (ALTER ... OWNER TO)"),
            (15, "create it again in its schema"),
            (16, "create it as its owner, who lacks CREATE on its schema"),
            (17, "create it in its tablespace"),
        ];
        let superuser = crate::pg::security::is_superuser();
        for (column, what) in checks {
            // The owner creates the view (its code runs at parse time, see recreate()): it
            // needs CREATE on the schema even when a superuser runs the change.
            if (!superuser || column == 16) && !flag(&row, column) {
                if column == 16 {
                    return Err(UserError::new(
                        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                        format!(
                            "cannot rebuild {} (owner {}) around the column change: its owner, who creates it again, lacks CREATE on schema {}",
                            view.describe(),
                            view.owner,
                            quote_identifier(&view.schema)
                        ),
                    )
                    .hint(format!(
                        "GRANT CREATE ON SCHEMA {} TO {} for the change, or drop and recreate the view in the migration yourself.",
                        quote_identifier(&view.schema),
                        quote_identifier(&view.owner)
                    )));
                }
                return Err(UserError::new(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!(
                        "cannot rebuild {} (owner {}) around the column change: the current user may not {what}",
                        view.describe(),
                        view.owner
                    ),
                )
                .hint(format!(
                    "Run the change as {} or a role that can SET ROLE to it, or drop and recreate the view in the migration yourself.",
                    quote_identifier(&view.owner)
                )));
            }
        }
        Ok(view)
    })?;
    read_parts(&mut view);
    view.routines = routines(oid);
    Ok(view)
}

/// The functions and operators view `oid` calls.
fn routines(oid: pg_sys::Oid) -> Vec<Routine> {
    Spi::connect(|client| {
        let rows = client
            .select(
                include_str!("queries/dependent_view_routines.sql"),
                None,
                &[oid.into()],
            )
            .unwrap_or_else(|e| error!("migrate: reading a view's functions failed: {e}"));
        rows.into_iter()
            .map(|row| Routine {
                key: text(&row, 1).unwrap_or_default(),
                what: text(&row, 2).unwrap_or_default(),
                owner: row.get::<pg_sys::Oid>(3).ok().flatten().unwrap_or_default(),
                builtin: flag(&row, 4),
            })
            .collect()
    })
}

/// After `view` (and its indexes) was created again from its text: the names in it were resolved anew with the
/// new column type, so a function or operator overload that someone with CREATE on a routine's
/// schema planted (`util.f(bigint)` beside the `util.f(int)` the view called) would now be
/// called, by every reader of the view and by REFRESH as its owner. Refused (42501) unless each
/// one it calls now and did not before is built in, or belongs to the view's owner, a
/// superuser, or the owner of a function or operator it called before.
fn check_routines(view: &SavedView) -> Result<()> {
    let oid = crate::pg::query::one::<pg_sys::Oid>(
        "SELECT $1::pg_catalog.text::pg_catalog.regclass::pg_catalog.oid",
        &[view.qualified().as_str().into()],
    )
    .unwrap_or_default();
    let owner = crate::pg::security::role_oid(&view.owner).unwrap_or_default();
    for routine in routines(oid) {
        let new = !view.routines.iter().any(|old| old.key == routine.key);
        let trusted = routine.builtin
            || routine.owner == owner
            || crate::pg::security::is_superuser_role(routine.owner)
            || view.routines.iter().any(|old| old.owner == routine.owner);
        if new && !trusted {
            let owner_name = crate::pg::security::role_name(routine.owner).unwrap_or_default();
            return Err(UserError::new(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "cannot rebuild {} around the column change: with the new type its definition or an index of it calls {} (owner {owner_name}), which it did not call before",
                    view.describe(),
                    routine.what
                ),
            )
            .hint(format!(
                "Drop {} and create it again around the change in the same migration, calling the function you mean for the new type.",
                view.qualified()
            )));
        }
    }
    Ok(())
}

fn read_parts(view: &mut SavedView) {
    Spi::connect(|client| {
        let rows = client
            .select(
                include_str!("queries/dependent_view_grants.sql"),
                None,
                &[view.oid.into()],
            )
            .unwrap_or_else(|e| error!("migrate: reading a view's grants failed: {e}"));
        for row in rows {
            view.grants.push(Grant {
                grantor: row.get::<pg_sys::Oid>(1).ok().flatten().unwrap_or_default(),
                grantee: row.get::<pg_sys::Oid>(2).ok().flatten().unwrap_or_default(),
                privilege: text(&row, 3).unwrap_or_default(),
                grantable: flag(&row, 4),
                column: text(&row, 5),
            });
        }
        let rows = client
            .select(
                include_str!("queries/dependent_view_parts.sql"),
                None,
                &[view.oid.into()],
            )
            .unwrap_or_else(|e| error!("migrate: reading a view's comments failed: {e}"));
        for row in rows {
            let second = text(&row, 2).unwrap_or_default();
            match text(&row, 1).as_deref() {
                Some("column") => view
                    .column_comments
                    .push((second, text(&row, 3).unwrap_or_default())),
                Some("revoke") => view.owner_revoked.push(second),
                Some("index") => view.indexes.push(Index {
                    definition: second,
                    comment: text(&row, 3),
                    name: text(&row, 4).unwrap_or_default(),
                }),
                _ => {}
            }
        }
    });
}

impl SavedViews {
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// Drops the views, each after every view that reads it, without CASCADE: anything else
    /// that depends on one makes PostgreSQL's DROP fail, with a HINT naming the view.
    pub fn drop_all(&self) -> Result<()> {
        crate::pg::security::restricted(|| {
            for view in self.views.iter().rev() {
                run(
                    &format!("DROP {} {}", view.keyword(), view.qualified()),
                    view,
                    "dropping it before the column change",
                )?;
            }
            Ok(())
        })
    }

    /// Recreates the views in dependency order, as they were saved.
    pub fn recreate(&self) -> Result<()> {
        crate::pg::security::restricted(|| {
            crate::pg::security::with_own_settings(DEPARSE_SETTINGS, || {
                for view in &self.views {
                    recreate(view)?;
                }
                Ok(())
            })
        })
    }
}

/// Runs one statement of a rebuild in a subtransaction; PostgreSQL's error comes back with its
/// SQLSTATE, message and detail, and a HINT naming the view.
fn run(sql: &str, view: &SavedView, doing: &str) -> Result<()> {
    crate::pg::subxact::run(|| Spi::run(sql)).map_err(|caught| {
        let (code, message, detail, hint) = crate::error::caught_parts(&caught);
        let mut error = UserError::new(code, message).hint(format!(
            "migrate rebuilds {}, which depends on the changed column, and failed {doing}{}; change or drop the view in the same migration.",
            view.describe(),
            hint.map(|h| format!(" ({h})")).unwrap_or_default()
        ));
        error.detail = detail;
        error
    })?
    .unwrap_or_else(|e| error!("migrate: {e}"));
    Ok(())
}

fn recreate(view: &SavedView) -> Result<()> {
    let name = view.qualified();
    let keyword = view.keyword();
    let mut create = format!("CREATE {keyword} {name}");
    if !view.options.is_empty() {
        let options: Vec<String> = view
            .options
            .iter()
            .map(|o| match o.split_once('=') {
                Some((k, v)) => format!("{} = {}", quote_identifier(k), quote_literal(v)),
                None => quote_identifier(o),
            })
            .collect();
        create.push_str(&format!(" WITH ({})", options.join(", ")));
    }
    if let Some(tablespace) = &view.tablespace {
        create.push_str(&format!(" TABLESPACE {}", quote_identifier(tablespace)));
    }
    create.push_str(&format!(" AS {}", view.definition));
    if view.materialized {
        create.push_str(" WITH NO DATA");
    }
    let ctx = "recreating it after the column change";
    // As the view's owner (still security-restricted): parse analysis runs code of whoever
    // wrote the definition (a literal of an array or composite of a domain is read by the
    // domain's input, which evaluates its CHECK, which can call the owner's function), so it
    // must not run as the statement's user, a superuser perhaps (as REFRESH and index builds).
    let owner = crate::pg::security::role_oid(&view.owner).unwrap_or_default();
    crate::pg::security::run_as(owner, || run(&create, view, ctx))?;
    run(
        &format!(
            "ALTER {keyword} {name} OWNER TO {}",
            quote_identifier(&view.owner)
        ),
        view,
        ctx,
    )?;
    undo_default_privileges(view)?;
    if let Some(comment) = &view.comment {
        run(
            &format!("COMMENT ON {keyword} {name} IS {}", quote_literal(comment)),
            view,
            ctx,
        )?;
    }
    for (column, comment) in &view.column_comments {
        run(
            &format!(
                "COMMENT ON COLUMN {name}.{} IS {}",
                quote_identifier(column),
                quote_literal(comment)
            ),
            view,
            ctx,
        )?;
    }
    restore_grants(view)?;
    for index in &view.indexes {
        // As the owner too: an index expression or predicate is parsed like a definition.
        crate::pg::security::run_as(owner, || run(&index.definition, view, ctx))?;
        if let Some(comment) = &index.comment {
            run(
                &format!(
                    "COMMENT ON INDEX {} IS {}",
                    index.name,
                    quote_literal(comment)
                ),
                view,
                ctx,
            )?;
        }
    }
    // Before anything runs the view's query or index expressions (REFRESH, its readers).
    check_routines(view)?;
    if view.materialized && view.populated {
        // Runs the query as the owner, security-restricted (REFRESH's own switch).
        run(&format!("REFRESH MATERIALIZED VIEW {name}"), view, ctx)?;
    }
    Ok(())
}

/// The default privileges (ALTER DEFAULT PRIVILEGES) of the role that created the view again
/// are not the view's: without this, a migration user's defaults would grant other roles access
/// to another owner's view. What they added is revoked and the owner's own default privileges
/// are given back, before the saved grants are replayed; a view they did not touch keeps its
/// default (NULL) ACL.
fn undo_default_privileges(view: &SavedView) -> Result<()> {
    let name = view.qualified();
    let added = crate::pg::query::one::<Vec<pg_sys::Oid>>(
        "SELECT pg_catalog.array_agg(DISTINCT a.grantee) \
         FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a \
         WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.regclass \
           AND a.grantee OPERATOR(pg_catalog.<>) c.relowner",
        &[name.as_str().into()],
    );
    let acl_set = crate::pg::query::one::<bool>(
        "SELECT c.relacl IS NOT NULL FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.regclass",
        &[name.as_str().into()],
    )
    .unwrap_or(false);
    if !acl_set {
        return Ok(());
    }
    let owner = crate::pg::security::role_oid(&view.owner).unwrap_or_default();
    let ctx = "undoing the default privileges of the role that recreated it";
    crate::pg::security::run_as(owner, || {
        for grantee in added.unwrap_or_default() {
            let grantee = if grantee == pg_sys::InvalidOid {
                "PUBLIC".to_string()
            } else {
                quote_identifier(crate::pg::security::role_name(grantee).unwrap_or_default())
            };
            run(
                &format!("REVOKE ALL ON TABLE {name} FROM {grantee}"),
                view,
                ctx,
            )?;
        }
        run(
            &format!(
                "GRANT ALL ON TABLE {name} TO {}",
                quote_identifier(&view.owner)
            ),
            view,
            ctx,
        )
    })
}

/// Replays the ACLs: each privilege granted again by its own grantor (so grant options and
/// grantors come out as they were), then what the owner had revoked from itself.
fn restore_grants(view: &SavedView) -> Result<()> {
    let name = view.qualified();
    let ctx = "restoring its grants";
    for grant in &view.grants {
        let grantee = if grant.grantee == pg_sys::InvalidOid {
            "PUBLIC".to_string()
        } else {
            quote_identifier(crate::pg::security::role_name(grant.grantee).unwrap_or_default())
        };
        let privilege = match &grant.column {
            Some(column) => format!("{} ({})", grant.privilege, quote_identifier(column)),
            None => grant.privilege.clone(),
        };
        let option = if grant.grantable {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        let sql = format!("GRANT {privilege} ON TABLE {name} TO {grantee}{option}");
        crate::pg::security::run_as(grant.grantor, || run(&sql, view, ctx))?;
    }
    if view.acl_set && !view.owner_revoked.is_empty() {
        let sql = format!(
            "REVOKE {} ON TABLE {name} FROM {}",
            view.owner_revoked.join(", "),
            quote_identifier(&view.owner)
        );
        let owner = crate::pg::security::role_oid(&view.owner).unwrap_or_default();
        crate::pg::security::run_as(owner, || run(&sql, view, ctx))?;
    }
    Ok(())
}
