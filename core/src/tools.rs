//! Each guard rule's safe form in the words of the migration tool a team uses: a Django user
//! needs `AddIndexConcurrently` in a migration with `atomic = False`, not `CREATE INDEX
//! CONCURRENTLY` in a `-- migrate:no-transaction` file. The guard's HINT adds the line for the
//! database's tool (`migrate.tool`); `migrate.rule_advice` lists them all and docs/TOOLS.md
//! prints the same table (a test keeps the two equal).

/// A migration tool (or framework) whose users get hints in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Django,
    Alembic,
    Rails,
    Prisma,
    Drizzle,
    Flyway,
    GolangMigrate,
    Sqlx,
    Diesel,
    Dbmate,
}

/// Every tool, in the order tables list them.
pub const TOOLS: [Tool; 10] = [
    Tool::Django,
    Tool::Alembic,
    Tool::Rails,
    Tool::Prisma,
    Tool::Drizzle,
    Tool::Flyway,
    Tool::GolangMigrate,
    Tool::Sqlx,
    Tool::Diesel,
    Tool::Dbmate,
];

impl Tool {
    /// The name `migrate.tool` and `migrate-cli adopt --from` take.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Django => "django",
            Tool::Alembic => "alembic",
            Tool::Rails => "rails",
            Tool::Prisma => "prisma",
            Tool::Drizzle => "drizzle",
            Tool::Flyway => "flyway",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Dbmate => "dbmate",
        }
    }

    /// How the tool's users write it in prose.
    pub fn title(self) -> &'static str {
        match self {
            Tool::Django => "Django",
            Tool::Alembic => "Alembic",
            Tool::Rails => "Rails",
            Tool::Prisma => "Prisma",
            Tool::Drizzle => "Drizzle",
            Tool::Flyway => "Flyway",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Dbmate => "dbmate",
        }
    }

    pub fn parse(name: &str) -> Option<Tool> {
        TOOLS.into_iter().find(|t| t.name() == name)
    }

    /// How a migration of this tool runs outside a transaction (what `CONCURRENTLY` needs).
    fn no_transaction(self) -> &'static str {
        match self {
            Tool::Django => "a migration with atomic = False",
            Tool::Alembic => "a with op.get_context().autocommit_block(): block",
            Tool::Rails => "a migration with disable_ddl_transaction!",
            Tool::Prisma => "a migration of its own whose migration.sql holds only that statement",
            Tool::Drizzle => "a migration of its own deployed with migrate-cli deploy (drizzle-kit migrate runs every migration in one transaction)",
            Tool::Flyway => "a migration of its own next to a V<version>__<name>.sql.conf file saying executeInTransaction=false",
            Tool::GolangMigrate => "a migration file of its own holding only that statement",
            Tool::Sqlx => "a migration whose first line is -- no-transaction",
            Tool::Diesel => "a migration whose metadata.toml says run_in_transaction = false",
            Tool::Dbmate => "a migration whose -- migrate:up line says transaction:false",
        }
    }

    /// A tool whose migrations are files of SQL (every one here except the frameworks).
    fn writes_sql(self) -> bool {
        !matches!(self, Tool::Django | Tool::Alembic | Tool::Rails)
    }
}

/// The safe form of `rule` in `tool`'s terms; None for a rule with no tool-specific form.
pub fn advice(rule: &str, tool: Tool) -> Option<String> {
    use Tool::*;
    let nt = tool.no_transaction();
    let sql = tool.writes_sql();
    let text = match (rule, tool) {
        ("index_not_concurrent", Django) => format!(
            "AddIndexConcurrently (django.contrib.postgres.operations) in {nt}"
        ),
        ("index_not_concurrent", Alembic) => format!(
            "op.create_index(..., postgresql_concurrently=True) inside {nt}"
        ),
        ("index_not_concurrent", Rails) => {
            format!("add_index ..., algorithm: :concurrently in {nt}")
        }
        ("index_not_concurrent", _) => format!("CREATE INDEX CONCURRENTLY in {nt}"),

        ("index_partitioned", Django) => format!(
            "RunSQL('CREATE INDEX name ON ONLY parent (...)'), then one RunSQL('CREATE INDEX CONCURRENTLY ... ON partition (...)') per partition in {nt}, then RunSQL('ALTER INDEX name ATTACH PARTITION ...') for each, with state_operations=[AddIndex(...)]"
        ),
        ("index_partitioned", Alembic) => format!(
            "op.execute('CREATE INDEX name ON ONLY parent (...)'), then op.create_index(..., postgresql_concurrently=True) on each partition inside {nt}, then op.execute('ALTER INDEX name ATTACH PARTITION ...') for each"
        ),
        ("index_partitioned", Rails) => format!(
            "execute 'CREATE INDEX name ON ONLY parent (...)', then add_index on each partition with algorithm: :concurrently in {nt}, then execute 'ALTER INDEX name ATTACH PARTITION ...' for each"
        ),
        ("index_partitioned", _) => format!(
            "CREATE INDEX name ON ONLY parent (...) in one migration, CREATE INDEX CONCURRENTLY on each partition in {nt}, then ALTER INDEX name ATTACH PARTITION each one"
        ),
        ("reindex_not_concurrent", Django) => format!("RunSQL('REINDEX INDEX CONCURRENTLY ...') in {nt}"),
        ("reindex_not_concurrent", Alembic) => format!("op.execute('REINDEX INDEX CONCURRENTLY ...') inside {nt}"),
        ("reindex_not_concurrent", Rails) => format!("execute 'REINDEX INDEX CONCURRENTLY ...' in {nt}"),
        ("reindex_not_concurrent", _) => format!("REINDEX ... CONCURRENTLY in {nt}"),

        ("add_foreign_key", Django) => "AddConstraintNotValid (django.contrib.postgres.operations) with the ForeignKey's constraint, then ValidateConstraint in a later migration".into(),
        ("add_foreign_key", Alembic) => "op.create_foreign_key(..., postgresql_not_valid=True), then op.execute('ALTER TABLE ... VALIDATE CONSTRAINT ...') in a later revision".into(),
        ("add_foreign_key", Rails) => "add_foreign_key ..., validate: false, then validate_foreign_key in a later migration".into(),
        ("add_check", Django) => "AddConstraintNotValid with the CheckConstraint, then ValidateConstraint in a later migration".into(),
        ("add_check", Alembic) => "op.create_check_constraint(..., postgresql_not_valid=True), then VALIDATE CONSTRAINT with op.execute() in a later revision".into(),
        ("add_check", Rails) => "add_check_constraint ..., validate: false, then validate_check_constraint in a later migration".into(),
        ("add_foreign_key" | "add_check", _) if sql => "ADD CONSTRAINT ... NOT VALID in one migration, ALTER TABLE ... VALIDATE CONSTRAINT in the next".into(),

        ("set_not_null", Django) => "AddConstraintNotValid(CheckConstraint(condition=Q(col__isnull=False))), ValidateConstraint, then AlterField(null=False) and RemoveConstraint: PostgreSQL skips the scan when a validated CHECK proves it".into(),
        ("set_not_null", Alembic) => "op.create_check_constraint('c', 't', 'col IS NOT NULL', postgresql_not_valid=True), VALIDATE it, op.alter_column(nullable=False), then op.drop_constraint('c')".into(),
        ("set_not_null", Rails) => "add_check_constraint 'col IS NOT NULL', validate: false; validate_check_constraint; change_column_null; remove_check_constraint".into(),

        ("add_unique_constraint", Django) => format!(
            "AddIndexConcurrently with a unique index in {nt}, then RunSQL('ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX ...') with state_operations for the model"
        ),
        ("add_unique_constraint", Alembic) => format!(
            "op.create_index(..., unique=True, postgresql_concurrently=True) inside {nt}, then op.execute('ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX ...')"
        ),
        ("add_unique_constraint", Rails) => format!(
            "add_index ..., unique: true, algorithm: :concurrently in {nt}, then execute 'ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX ...'"
        ),
        ("add_unique_constraint", _) => format!(
            "CREATE UNIQUE INDEX CONCURRENTLY in {nt}, then ADD CONSTRAINT ... UNIQUE USING INDEX in the next migration"
        ),

        ("add_column_volatile_default", Django) => "AddField without the default (null=True), fill it with migrate.backfill() (RunSQL), then AlterField with db_default".into(),
        ("add_column_volatile_default", Alembic) => "op.add_column without server_default, fill it with op.execute(\"SELECT migrate.backfill(...)\"), then op.alter_column(server_default=...)".into(),
        ("add_column_volatile_default", Rails) => "add_column without the default, backfill with execute \"SELECT migrate.backfill(...)\", then change_column_default".into(),

        ("alter_column_type" | "table_rewrite", Django) => "expand and contract: AddField of the new type, keep both written, fill it with migrate.backfill() (RunSQL), switch the code, RemoveField the old one".into(),
        ("alter_column_type" | "table_rewrite", Alembic) => "expand and contract: op.add_column of the new type, fill it with migrate.backfill() through op.execute(), switch the code, op.drop_column the old one".into(),
        ("alter_column_type" | "table_rewrite", Rails) => "expand and contract: add_column of the new type, backfill, switch the code, remove_column the old one (ignored_columns first)".into(),

        ("drop_column", Django) => "remove the field from the model and deploy that first (SeparateDatabaseAndState), then RemoveField in a later migration".into(),
        ("drop_column", Rails) => "self.ignored_columns += [...] deployed first, then remove_column in a later migration".into(),
        ("rename_column", Django) => "no RenameField on a live table: AddField, write both, backfill, switch, RemoveField".into(),
        ("rename_column", Rails) => "no rename_column on a live table: add_column, write both, backfill, switch, remove_column".into(),
        _ => return None,
    };
    Some(text)
}

/// What a guard HINT about `rule` adds after its SQL form: the tool's own form when the
/// database names its tool (`migrate.tool`), else where every tool's form is listed.
pub fn hint_tail(rule: &str, tool: Option<Tool>) -> String {
    match tool.and_then(|t| advice(rule, t).map(|a| (t, a))) {
        Some((t, a)) => format!(" In {}: {a}.", t.title()),
        None if TOOLS.iter().any(|&t| advice(rule, t).is_some()) => format!(
            " The form for your migration tool: migrate.rule_advice, {}.",
            link(rule)
        ),
        None => String::new(),
    }
}

/// Where the table of every rule's form per tool is: docs/TOOLS.md, one section per rule.
pub fn link(rule: &str) -> String {
    format!("docs/TOOLS.md#{rule}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RULES;

    #[test]
    fn names_round_trip() {
        for tool in TOOLS {
            assert_eq!(Tool::parse(tool.name()), Some(tool));
        }
        assert_eq!(Tool::parse("rails "), None);
    }

    #[test]
    fn every_tool_has_the_concurrent_index_form() {
        for tool in TOOLS {
            let a = advice("index_not_concurrent", tool).unwrap();
            assert!(a.contains("oncurrent") || a.contains("CONCURRENTLY"), "{a}");
        }
        assert!(advice("index_not_concurrent", Tool::Django)
            .unwrap()
            .contains("atomic = False"));
        assert_eq!(advice("drop_table", Tool::Django), None);
    }

    #[test]
    fn hint_tails() {
        assert_eq!(
            hint_tail("index_not_concurrent", Some(Tool::Alembic)),
            " In Alembic: op.create_index(..., postgresql_concurrently=True) inside a with op.get_context().autocommit_block(): block."
        );
        assert_eq!(
            hint_tail("index_not_concurrent", None),
            " The form for your migration tool: migrate.rule_advice, docs/TOOLS.md#index_not_concurrent."
        );
        // A rule no tool words differently: nothing to add.
        assert_eq!(hint_tail("drop_table", Some(Tool::Django)), "");
        // A tool without its own form of a rule that others have: the pointer.
        assert!(hint_tail("set_not_null", Some(Tool::Sqlx)).contains("docs/TOOLS.md#set_not_null"));
    }

    /// docs/TOOLS.md prints exactly this module's table: a section per rule with advice, a row
    /// per tool.
    #[test]
    fn the_documented_table_is_this_one() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/TOOLS.md"))
            .expect("docs/TOOLS.md");
        for rule in RULES {
            for tool in TOOLS {
                if let Some(a) = advice(rule.id, tool) {
                    let row = format!("| {} | {} |", tool.title(), a.replace('|', "\\|"));
                    assert!(
                        doc.contains(&row),
                        "docs/TOOLS.md lacks, under {}: {row}\n(regenerate: cargo test -p migrate-core -- --ignored print_tools_table)",
                        rule.id
                    );
                }
            }
        }
    }

    /// Prints the docs/TOOLS.md rule sections.
    #[test]
    #[ignore]
    fn print_tools_table() {
        for rule in RULES {
            let rows: Vec<String> = TOOLS
                .into_iter()
                .filter_map(|t| {
                    advice(rule.id, t)
                        .map(|a| format!("| {} | {} |", t.title(), a.replace('|', "\\|")))
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            println!(
                "### {}\n\n{}\n\nSQL: {}\n\n| tool | the safe form |\n|---|---|",
                rule.id, rule.detects, rule.safe_alternative
            );
            for r in rows {
                println!("{r}");
            }
            println!();
        }
    }
}
