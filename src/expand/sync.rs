//! The sync trigger's function: plain text built from the expansion's facts (no server needed,
//! unit-tested below).
//!
//! One `BEFORE INSERT OR UPDATE ... FOR EACH ROW` trigger keeps the two columns equal under
//! `up` (old -> new) and `down` (new -> old). It only assigns fields of `NEW`, never writes
//! the table, so it cannot recurse. Which side a write went through:
//!
//! - INSERT: a NULL new column means "not given" (the new column has no default while the
//!   expansion is open), so `new := up`; a new value that `up` of the old one does not give
//!   wins: `old := down`.
//! - UPDATE that changes the new column (whether or not it changes the old): the new column
//!   wins (a statement that names the new column is new application code, and the new column
//!   is the one that survives the contract); `old := down` unless the old value already maps to
//!   it (the backfill's own `SET new = up`, or a new application writing both consistently).
//! - UPDATE that changes only the old column: `new := up`.
//! - UPDATE that changes neither, of a row the backfill has not reached (new is NULL):
//!   `new := up`, so a NOT NULL check on the new column holds for every row written.
//!
//! The author's expressions read columns by name: the function declares one variable per
//! column the expressions may name (any whose name occurs in their text), set from `NEW`, and
//! the expressions run as PL/pgSQL expressions over them (`#variable_conflict use_variable`).
//! Other columns are not declared, so dropping one later (or another expansion's contract on
//! the same table) does not break the trigger.

use crate::worker::backfill::quote_ident;

/// What the trigger function needs to know.
pub struct SyncFunction<'a> {
    /// The function's qualified, quoted name.
    pub function: &'a str,
    /// The columns the expressions may name (name, type), in table order.
    pub columns: &'a [(String, String)],
    pub old_column: &'a str,
    pub new_column: &'a str,
    pub up: &'a str,
    pub down: &'a str,
    /// The `search_path` the function runs with (already a valid, quoted list).
    pub search_path: &'a str,
}

/// Column names the function cannot declare as variables: they would hide the trigger's own
/// `NEW`, `OLD` and `TG_OP`.
pub const RESERVED_COLUMNS: &[&str] = &["new", "old", "tg_op"];

impl SyncFunction<'_> {
    /// `CREATE FUNCTION ...` for the trigger function.
    pub fn create_sql(&self) -> String {
        let old = quote_ident(self.old_column);
        let new = quote_ident(self.new_column);
        let up = format!("(\n{}\n)", self.up);
        let down = format!("(\n{}\n)", self.down);
        let declarations: String = self
            .columns
            .iter()
            .map(|(name, ty)| {
                let n = quote_ident(name);
                format!("    {n} {ty} := NEW.{n};\n")
            })
            .collect();
        let body = format!(
            "\n#variable_conflict use_variable\nDECLARE\n{declarations}BEGIN\n\
             IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN\n\
             IF NEW.{new} IS NULL THEN\nNEW.{new} := {up};\n\
             ELSIF NEW.{new} IS DISTINCT FROM {up} THEN\nNEW.{old} := {down};\nEND IF;\n\
             ELSIF NEW.{new} IS DISTINCT FROM OLD.{new} THEN\n\
             IF NEW.{new} IS DISTINCT FROM {up} THEN\nNEW.{old} := {down};\nEND IF;\n\
             ELSIF NEW.{old} IS DISTINCT FROM OLD.{old} OR NEW.{new} IS NULL THEN\n\
             NEW.{new} := {up};\nEND IF;\nRETURN NEW;\nEND\n"
        );
        let tag = dollar_tag(&body);
        format!(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER \
             SET search_path = {} AS {tag}{body}{tag}",
            self.function, self.search_path
        )
    }
}

/// A dollar-quote tag that does not occur in `body`, so the author's text cannot end it.
fn dollar_tag(body: &str) -> String {
    (0..)
        .map(|n| format!("$migrate_sync_{n}$"))
        .find(|tag| !body.contains(tag.as_str()))
        .expect("some tag is free")
}

/// A name of at most 63 bytes (PostgreSQL's NAMEDATALEN - 1), cut at a character boundary.
pub fn identifier(name: String) -> String {
    if name.len() <= 63 {
        return name;
    }
    let mut end = 63;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function<'a>(columns: &'a [(String, String)], up: &'a str) -> SyncFunction<'a> {
        SyncFunction {
            function: "public.\"orders_total_sync\"",
            columns,
            old_column: "total",
            new_column: "total_cents",
            up,
            down: "total_cents / 100.0",
            search_path: "pg_catalog, \"public\", pg_temp",
        }
    }

    #[test]
    fn the_function_declares_every_column_and_pins_its_path() {
        let columns = vec![
            ("id".to_string(), "integer".to_string()),
            ("total".to_string(), "numeric".to_string()),
            ("total_cents".to_string(), "bigint".to_string()),
        ];
        let sql = function(&columns, "(total * 100)::bigint").create_sql();
        assert!(sql.starts_with(
            "CREATE FUNCTION public.\"orders_total_sync\"() RETURNS trigger LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, \"public\", pg_temp AS $migrate_sync_0$"
        ));
        assert!(sql.contains("    \"total\" numeric := NEW.\"total\";\n"));
        assert!(sql.contains("NEW.\"total_cents\" := (\n(total * 100)::bigint\n);"));
        assert!(sql.contains("NEW.\"total\" := (\ntotal_cents / 100.0\n);"));
        assert!(sql.ends_with("END\n$migrate_sync_0$"));
    }

    #[test]
    fn the_authors_text_cannot_end_the_body() {
        let columns = vec![("total".to_string(), "numeric".to_string())];
        let sql = function(&columns, "'$migrate_sync_0$'::text").create_sql();
        assert!(sql.contains("AS $migrate_sync_1$"));
        assert!(sql.ends_with("$migrate_sync_1$"));
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let long = "é".repeat(40);
        let cut = identifier(long);
        assert!(cut.len() <= 63);
        assert_eq!(cut.chars().count(), 31);
        assert_eq!(identifier("short".into()), "short");
    }
}
