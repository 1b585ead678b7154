//! Another tool's bookkeeping table (`__diesel_schema_migrations`, `_sqlx_migrations`, ...),
//! read for `adopt()` and `validate()`'s drift. Any role that can create tables in a schema on
//! the path could have made it, so it is treated as data only:
//! - found as the tool finds it (the first schema of the caller's `search_path` that has it, the
//!   session's temporary schema left out; Drizzle's fixed `drizzle` schema), or given;
//! - locked (`ACCESS SHARE`, `NOWAIT`) before it is looked at, so it cannot be renamed, dropped
//!   or turned into a view between the checks and the read;
//! - an ordinary table (not a view, foreign or partitioned table, whose reading could run
//!   code), with the tool's columns in built-in types and none of them generated;
//! - read with `ONLY` (no inheritance children), every value cast to a built-in type, as the
//!   registry owner with `row_security = off` (no policy expression runs), never sorted by the
//!   server (no collation or operator of the table's is used);
//! - trusted only if every role that can write it could apply the registered migrations
//!   itself ([`untrusted_writer`]): a planted row must not make migrate skip or run a
//!   migration for a role that could not have applied it. Nothing read is ever an identity or
//!   code: `installed_by` columns are not read at all.

use migrate_core::adopt::{
    DjangoRow, DrizzleRow, FlywayRow, GolangRow, PrismaRow, Rows, SqlxRow, Tool, VersionRow,
};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiHeapTupleData};

use crate::error::{Result, UserError};
use crate::pg::query;
use crate::pg::security::{self, as_registry_owner};

/// The server's timestamps, as the rows carry them.
pub type Time = TimestampWithTimeZone;

/// A tool's table: its OID and where it is.
#[derive(Debug, Clone)]
pub struct ToolTable {
    pub oid: pg_sys::Oid,
    pub schema: String,
    pub name: String,
}

impl ToolTable {
    /// `schema.name`, quoted where needed (messages, and the SQL that reads it).
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            quote_identifier(&self.schema),
            quote_identifier(&self.name)
        )
    }
}

fn by_oid(oid: pg_sys::Oid) -> Option<ToolTable> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text \
             FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
             WHERE c.oid OPERATOR(pg_catalog.=) $1",
            None,
            &[oid.into()],
        )?;
        Ok::<_, pgrx::spi::SpiError>(rows.into_iter().next().map(|row| ToolTable {
            oid,
            schema: row.get::<String>(1).ok().flatten().unwrap_or_default(),
            name: row.get::<String>(2).ok().flatten().unwrap_or_default(),
        }))
    })
    .unwrap_or_else(|e| error!("migrate: could not look up a table: {e}"))
}

/// The relation `name` in `schema`, if there is one.
pub fn find(schema: &str, name: &str) -> Option<ToolTable> {
    let oid = query::one::<pg_sys::Oid>(
        "SELECT c.oid FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
         WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relname OPERATOR(pg_catalog.=) $2",
        &[schema.into(), name.into()],
    )?;
    Some(ToolTable {
        oid,
        schema: schema.to_string(),
        name: name.to_string(),
    })
}

/// The tool's table: `given`, or where the tool keeps it by default (see the module).
pub fn locate(tool: Tool, given: Option<pg_sys::Oid>) -> Result<ToolTable> {
    if let Some(oid) = given {
        return by_oid(oid).ok_or_else(|| {
            UserError::new(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation with OID {oid:?} does not exist"),
            )
            .hint("Pass the tool's table as tool_table => 'schema.table'.")
        });
    }
    let (schema, name) = tool.default_table();
    let found = match schema {
        Some(schema) => find(schema, name),
        // The caller's path, in order, as an unqualified name resolves (without the session's
        // temporary schema: the tool's own session would not see it).
        None => query::one::<pg_sys::Oid>(
            "SELECT c.oid FROM pg_catalog.unnest(pg_catalog.current_schemas(false)) \
                  WITH ORDINALITY AS s(name, pos) \
             JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) s.name \
             JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid \
                  AND c.relname OPERATOR(pg_catalog.=) $1 \
             WHERE n.oid OPERATOR(pg_catalog.<>) pg_catalog.pg_my_temp_schema() \
             ORDER BY s.pos LIMIT 1",
            &[name.into()],
        )
        .and_then(by_oid),
    };
    found.ok_or_else(|| {
        let place = match schema {
            Some(schema) => format!("in schema {schema}"),
            None => "in any schema of the search_path".to_string(),
        };
        UserError::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("{}'s table {name} was not found {place}", tool.display()),
        )
        .detail(format!(
            "{} records what it applied in {name}; adopt() reads it in the database {} migrated.",
            tool.display(),
            tool.display()
        ))
        .hint("Connect to that database with the search_path the tool uses, or pass the table: migrate.adopt(tool, tool_table => 'schema.table').")
    })
}

/// The built-in type name of each column of `table` (None for a type outside `pg_catalog`),
/// and whether it is generated.
fn columns(table: &ToolTable) -> Vec<(String, Option<String>, bool)> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT a.attname::pg_catalog.text, \
                    CASE WHEN t.typnamespace OPERATOR(pg_catalog.=) \
                              'pg_catalog'::pg_catalog.regnamespace \
                         THEN t.typname::pg_catalog.text END, \
                    a.attgenerated OPERATOR(pg_catalog.<>) '' \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid \
             WHERE a.attrelid OPERATOR(pg_catalog.=) $1 \
               AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
            None,
            &[table.oid.into()],
        )?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?,
                    row.get::<bool>(3)?.unwrap_or(true),
                ))
            })
            .collect::<std::result::Result<Vec<_>, pgrx::spi::SpiError>>()
    })
    .unwrap_or_else(|e| error!("migrate: could not read the columns of a table: {e}"))
}

/// The built-in types of the columns the tool's rows are read from.
pub struct Shape(Vec<(String, Option<String>, bool)>);

impl Shape {
    fn type_of(&self, column: &str) -> &str {
        self.0
            .iter()
            .find(|(name, _, _)| name == column)
            .and_then(|(_, t, _)| t.as_deref())
            .unwrap_or("")
    }
}

/// Locks `table` and checks it is the tool's (see the module); the caller must be able to
/// read it. Returns its column types, for [`read`].
pub fn open(tool: Tool, table: &ToolTable) -> Result<Shape> {
    let qualified = table.qualified();
    // Bounded: only an ACCESS EXCLUSIVE lock (ALTER, DROP) conflicts, and we do not wait.
    let locked = crate::pg::subxact::run(|| {
        as_registry_owner(|| {
            Spi::run(&format!(
                "LOCK TABLE ONLY {qualified} IN ACCESS SHARE MODE NOWAIT"
            ))
            .unwrap_or_else(|e| error!("migrate: {e}"))
        })
    });
    if let Err(caught) = locked {
        let (code, message, _, _) = crate::error::caught_parts(&caught);
        return Err(UserError::new(code, format!("{}'s table {qualified}: {message}", tool.display()))
            .hint("Another session is changing that table (or it is not a table): try again when it is done."));
    }
    // Locked by name: the name now stays with what we locked.
    if find(&table.schema, &table.name).map(|t| t.oid) != Some(table.oid) {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("{qualified} was replaced while adopt() was reading it"),
        )
        .hint("Try again."));
    }
    let kind = query::required::<String>(
        "SELECT c.relkind::pg_catalog.text FROM pg_catalog.pg_class c \
         WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[table.oid.into()],
    );
    if kind != "r" {
        let what = match kind.as_str() {
            "v" => "a view",
            "m" => "a materialized view",
            "f" => "a foreign table",
            "p" => "a partitioned table",
            _ => "not a table",
        };
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("{qualified} is {what}, not {}'s table", tool.display()),
        )
        .detail("adopt() reads only an ordinary table: reading a view or a foreign table could run code.")
        .hint("Pass the table the tool writes: migrate.adopt(tool, tool_table => 'schema.table')."));
    }
    let cols = columns(table);
    let named: Vec<(String, Option<String>)> = cols
        .iter()
        .map(|(name, t, generated)| (name.clone(), t.clone().filter(|_| !generated)))
        .collect();
    if let Some(problem) = tool.shape_problem(&qualified, &named) {
        return Err(UserError::new(PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE, problem).hint(
            "Name the tool whose table this is (adopt('dbmate') or adopt('golang-migrate') for schema_migrations), or pass its table with tool_table.",
        ));
    }
    let readable = query::required::<bool>(
        "SELECT pg_catalog.has_table_privilege($1, 'SELECT')",
        &[table.oid.into()],
    );
    if !readable {
        return Err(UserError::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to read {qualified}: role \"{}\" has no SELECT on it",
                security::role_name(security::current_user()).unwrap_or_default()
            ),
        )
        .hint("Adopt as a role that can read the tool's table (its owner, or GRANT SELECT)."));
    }
    Ok(Shape(cols))
}

/// A column read as text.
fn text(c: &str) -> String {
    format!("{}::pg_catalog.text", quote_identifier(c))
}

/// A timestamp column as `timestamptz`: `timestamp without time zone` is read in `zone`
/// (diesel's session writes UTC), else in the session's TimeZone.
fn time(shape: &Shape, c: &str, zone: Option<&str>) -> String {
    let q = quote_identifier(c);
    match (shape.type_of(c), zone) {
        ("timestamptz", _) => q,
        (_, Some(zone)) => format!("pg_catalog.timezone('{zone}', {q})"),
        (_, None) => format!("{q}::pg_catalog.timestamptz"),
    }
}

fn get<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, ordinal: usize) -> Option<T> {
    row.get::<T>(ordinal)
        .unwrap_or_else(|e| error!("migrate: could not read a tool's row: {e}"))
}

/// Reads the rows of the tool's table, [`open`]ed before, as data.
pub fn read(tool: Tool, table: &ToolTable, shape: &Shape) -> Rows<Time> {
    let from = format!("FROM ONLY {}", table.qualified());
    let select = match tool {
        Tool::Diesel => format!(
            "SELECT {}, {} {from}",
            text("version"),
            time(shape, "run_on", Some("UTC"))
        ),
        Tool::Dbmate => format!("SELECT {} {from}", text("version")),
        Tool::Alembic => format!("SELECT {} {from}", text("version_num")),
        Tool::GolangMigrate => format!("SELECT version::pg_catalog.int8, dirty {from}"),
        Tool::Flyway => format!(
            "SELECT installed_rank::pg_catalog.int8, {}, {}, {}, {}, checksum, {}, \
                    execution_time::pg_catalog.float8, success {from}",
            text("version"),
            text("description"),
            text("type"),
            text("script"),
            time(shape, "installed_on", None)
        ),
        Tool::Sqlx => format!(
            "SELECT version, {}, success, checksum, {}, \
                    execution_time::pg_catalog.float8 OPERATOR(pg_catalog./) 1000000 {from}",
            text("description"),
            time(shape, "installed_on", None)
        ),
        Tool::Prisma => {
            let (started, finished) = (
                time(shape, "started_at", None),
                time(shape, "finished_at", None),
            );
            format!(
                "SELECT {}, {}, {finished}, rolled_back_at IS NOT NULL, \
                        pg_catalog.date_part('epoch', {finished} OPERATOR(pg_catalog.-) {started}) \
                        OPERATOR(pg_catalog.*) 1000 {from}",
                text("migration_name"),
                text("checksum")
            )
        }
        Tool::Drizzle => format!(
            "SELECT id::pg_catalog.int8, {}, created_at::pg_catalog.int8 {from}",
            text("hash")
        ),
        Tool::Django => format!(
            "SELECT {}, {}, {} {from}",
            text("app"),
            text("name"),
            time(shape, "applied", None)
        ),
    };
    security::with_own_settings(&[(c"row_security", c"off")], || {
        as_registry_owner(|| {
            Spi::connect(|client| {
                let rows = client.select(&select, None, &[]).unwrap_or_else(|e| {
                    error!("migrate: could not read {}: {e}", table.qualified())
                });
                let text =
                    |row: &SpiHeapTupleData<'_>, i| get::<String>(row, i).unwrap_or_default();
                match tool {
                    Tool::Diesel | Tool::Dbmate => {
                        let rows = rows
                            .map(|row| VersionRow {
                                version: text(&row, 1),
                                at: if tool == Tool::Diesel {
                                    get(&row, 2)
                                } else {
                                    None
                                },
                            })
                            .collect();
                        if tool == Tool::Diesel {
                            Rows::Diesel(rows)
                        } else {
                            Rows::Dbmate(rows)
                        }
                    }
                    Tool::Alembic => Rows::Alembic(rows.map(|row| text(&row, 1)).collect()),
                    Tool::GolangMigrate => Rows::GolangMigrate(
                        rows.map(|row| GolangRow {
                            version: get(&row, 1).unwrap_or(-1),
                            dirty: get(&row, 2).unwrap_or(true),
                        })
                        .collect(),
                    ),
                    Tool::Flyway => Rows::Flyway(
                        rows.map(|row| FlywayRow {
                            rank: get(&row, 1).unwrap_or_default(),
                            version: get(&row, 2),
                            description: text(&row, 3),
                            kind: text(&row, 4),
                            script: text(&row, 5),
                            checksum: get(&row, 6),
                            at: get(&row, 7),
                            duration_ms: get(&row, 8),
                            success: get(&row, 9).unwrap_or(false),
                        })
                        .collect(),
                    ),
                    Tool::Sqlx => Rows::Sqlx(
                        rows.map(|row| SqlxRow {
                            version: get(&row, 1).unwrap_or_default(),
                            description: text(&row, 2),
                            success: get(&row, 3).unwrap_or(false),
                            checksum: get(&row, 4).unwrap_or_default(),
                            at: get(&row, 5),
                            duration_ms: get(&row, 6),
                        })
                        .collect(),
                    ),
                    Tool::Prisma => Rows::Prisma(
                        rows.map(|row| PrismaRow {
                            migration_name: text(&row, 1),
                            checksum: text(&row, 2),
                            finished_at: get(&row, 3),
                            rolled_back: get(&row, 4).unwrap_or(false),
                            duration_ms: get(&row, 5),
                        })
                        .collect(),
                    ),
                    Tool::Drizzle => Rows::Drizzle(
                        rows.map(|row| DrizzleRow {
                            id: get(&row, 1).unwrap_or_default(),
                            hash: text(&row, 2),
                            created_at: get(&row, 3),
                        })
                        .collect(),
                    ),
                    Tool::Django => Rows::Django(
                        rows.map(|row| DjangoRow {
                            app: text(&row, 1),
                            name: text(&row, 2),
                            at: get(&row, 3),
                        })
                        .collect(),
                    ),
                }
            })
        })
    })
}

/// A role that can write `table` but is not a member of one of `authors` (the roles that
/// registered migrations), with that author; None if every writer is.
pub fn untrusted_writer(table: &ToolTable, authors: &[String]) -> Option<(String, String)> {
    as_registry_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                include_str!("../queries/tool_table_writers.sql"),
                None,
                &[table.oid.into(), authors.to_vec().into()],
            )?;
            Ok::<_, pgrx::spi::SpiError>(rows.into_iter().next().map(|row| {
                (
                    row.get::<String>(1).ok().flatten().unwrap_or_default(),
                    row.get::<String>(2).ok().flatten().unwrap_or_default(),
                )
            }))
        })
        .unwrap_or_else(|e| error!("migrate: could not check who can write a table: {e}"))
    })
}
