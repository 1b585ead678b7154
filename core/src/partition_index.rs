//! The online recipe for `CREATE INDEX CONCURRENTLY` on a partitioned table, which PostgreSQL
//! refuses (`CONCURRENTLY` cannot build a partitioned index): create the parent's index
//! `ON ONLY` the parent (invalid, instant: the parent holds no rows), build each leaf
//! partition's index with `CREATE INDEX CONCURRENTLY`, and `ALTER INDEX ... ATTACH PARTITION`
//! it; a sub-partitioned partition gets its own `ON ONLY` index, its leaves attached to it, and
//! is attached itself once they are. PostgreSQL marks a partitioned index valid when every
//! partition has a valid index attached, so the parent ends valid after the last attach.
//!
//! Everything here is decided from the catalog state the extension reads, so a rerun after a
//! crash or a failure starts from what exists: attached partitions are skipped, an invalid
//! leftover of a failed build is dropped and built again.

use sha2::{Digest, Sha256};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1 bytes).
pub const MAX_IDENTIFIER: usize = 63;

/// The index name the recipe gives a partition's index: `<partition>_<index>`, or, when that
/// is longer than PostgreSQL's 63 bytes, its first bytes and a hash of the whole, so names
/// stay unique and the same on every run.
pub fn child_index_name(index: &str, partition: &str) -> String {
    let full = format!("{partition}_{index}");
    if full.len() <= MAX_IDENTIFIER {
        return full;
    }
    let hash = Sha256::digest(full.as_bytes());
    let tag: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut cut = MAX_IDENTIFIER - tag.len() - 1;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{tag}", &full[..cut])
}

/// Skips whitespace and comments (`--` to the end of the line, nesting `/* */`) from `i`:
/// where the next token starts (`bytes.len()` if none). Also how the extension finds where a
/// statement's SQL starts (src/pg/script.rs `first_token`).
pub fn skip_blank(bytes: &[u8], mut i: usize) -> usize {
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i..].starts_with(b"--") {
            // The server's lexer ends a `--` comment at a carriage return too.
            while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else {
            return i;
        }
    }
}

/// The end of one identifier starting at `i` (quoted or not), or None if there is none there.
fn identifier_end(bytes: &[u8], i: usize) -> Option<usize> {
    match bytes.get(i)? {
        b'"' => {
            let mut j = i + 1;
            loop {
                match bytes.get(j)? {
                    b'"' if bytes.get(j + 1) == Some(&b'"') => j += 2,
                    b'"' => return Some(j + 1),
                    _ => j += 1,
                }
            }
        }
        // U&"..." would need its escapes decoded: not supported (the caller refuses).
        b'U' | b'u' if bytes.get(i + 1) == Some(&b'&') => None,
        c if c.is_ascii_alphabetic() || *c == b'_' || *c >= 0x80 => {
            let mut j = i + 1;
            while j < bytes.len()
                && (bytes[j].is_ascii_alphanumeric()
                    || bytes[j] == b'_'
                    || bytes[j] == b'$'
                    || bytes[j] >= 0x80)
            {
                j += 1;
            }
            Some(j)
        }
        _ => None,
    }
}

/// The part of a `CREATE INDEX` statement after its table name: `USING method (columns)
/// INCLUDE ... WITH ... TABLESPACE ... WHERE ...` or `(columns) ...`, given the byte offset at
/// which the parser says the table name starts. None if the text there is not a (qualified)
/// name followed by `USING` or `(`.
pub fn index_definition(sql: &str, relation_at: usize) -> Option<&str> {
    let bytes = sql.as_bytes();
    let mut i = relation_at;
    loop {
        i = skip_blank(bytes, i);
        i = identifier_end(bytes, i)?;
        let after = skip_blank(bytes, i);
        if bytes.get(after) == Some(&b'.') {
            i = after + 1;
            continue;
        }
        i = after;
        break;
    }
    let rest = sql[i..].trim_end().trim_end_matches(';').trim_end();
    let starts_using = rest.len() >= 5
        && rest.as_bytes()[..5].eq_ignore_ascii_case(b"using")
        && !rest
            .as_bytes()
            .get(5)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
    (rest.starts_with('(') || starts_using).then_some(rest)
}

/// A table of the partition tree under the recipe, with the state of its index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The table, schema-qualified and quoted as SQL text.
    pub table: String,
    /// Its index's name, unqualified and quoted (created in the table's schema).
    pub index: String,
    /// The same index, schema-qualified and quoted.
    pub index_qualified: String,
    /// A partitioned table (its index is created `ON ONLY` it) rather than a leaf.
    pub partitioned: bool,
    pub state: IndexState,
    pub children: Vec<Node>,
}

/// What exists of a table's index in the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexState {
    /// No index of the recipe's name on the table.
    Missing,
    /// An index of the recipe's name that a failed or interrupted build left invalid.
    Invalid,
    /// A valid index, not yet attached to the parent's index.
    Detached,
    /// Attached to the parent's index (for the root: the root's index exists).
    Attached { valid: bool },
}

/// One statement of the recipe, each run top-level in a transaction of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `CREATE INDEX name ON ONLY table ...`: catalog only (a partitioned table has no rows).
    CreateOnly { table: String, index: String },
    /// `DROP INDEX CONCURRENTLY` of an invalid leftover.
    DropInvalid { index: String },
    /// `CREATE INDEX CONCURRENTLY name ON leaf ...`.
    Build { table: String, index: String },
    /// `REINDEX INDEX CONCURRENTLY` of an attached leaf index that is invalid.
    Rebuild { index: String },
    /// `ALTER INDEX parent ATTACH PARTITION child`.
    Attach { parent: String, index: String },
}

impl Step {
    /// The statement, with `definition` (from [`index_definition`]) and UNIQUE as asked.
    pub fn sql(&self, unique: bool, definition: &str) -> String {
        let unique = if unique { "UNIQUE " } else { "" };
        match self {
            Step::CreateOnly { table, index } => {
                format!("CREATE {unique}INDEX {index} ON ONLY {table} {definition}")
            }
            Step::DropInvalid { index } => format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"),
            Step::Build { table, index } => {
                format!("CREATE {unique}INDEX CONCURRENTLY {index} ON {table} {definition}")
            }
            Step::Rebuild { index } => format!("REINDEX INDEX CONCURRENTLY {index}"),
            Step::Attach { parent, index } => {
                format!("ALTER INDEX {parent} ATTACH PARTITION {index}")
            }
        }
    }

    /// True for the steps that build an index concurrently (and wait for old snapshots).
    pub fn concurrent_build(&self) -> bool {
        matches!(self, Step::Build { .. } | Step::Rebuild { .. })
    }
}

/// The steps that take `root` (the partitioned table the statement named) from the state its
/// tree is in to a valid index on it and every partition. Empty when nothing is left to do.
pub fn steps(root: &Node) -> Vec<Step> {
    let mut out = Vec::new();
    if root.state == (IndexState::Attached { valid: true }) {
        return out;
    }
    if root.state == IndexState::Missing {
        out.push(Step::CreateOnly {
            table: root.table.clone(),
            index: root.index.clone(),
        });
    }
    for child in &root.children {
        child_steps(&root.index_qualified, child, &mut out);
    }
    out
}

fn child_steps(parent: &str, node: &Node, out: &mut Vec<Step>) {
    let attach = Step::Attach {
        parent: parent.to_string(),
        index: node.index_qualified.clone(),
    };
    if node.partitioned {
        if let IndexState::Attached { valid: true } = node.state {
            return;
        }
        if matches!(node.state, IndexState::Missing | IndexState::Invalid) {
            // A partitioned index is never dropped by the recipe: `Invalid` here only means not
            // all of its partitions are attached yet, which the children's steps fix.
            if node.state == IndexState::Missing {
                out.push(Step::CreateOnly {
                    table: node.table.clone(),
                    index: node.index.clone(),
                });
            }
        }
        for child in &node.children {
            child_steps(&node.index_qualified, child, out);
        }
        if !matches!(node.state, IndexState::Attached { .. }) {
            out.push(attach);
        }
        return;
    }
    match node.state {
        IndexState::Attached { valid: true } => {}
        IndexState::Attached { valid: false } => out.push(Step::Rebuild {
            index: node.index_qualified.clone(),
        }),
        IndexState::Detached => out.push(attach),
        IndexState::Invalid => {
            out.push(Step::DropInvalid {
                index: node.index_qualified.clone(),
            });
            out.push(Step::Build {
                table: node.table.clone(),
                index: node.index.clone(),
            });
            out.push(attach);
        }
        IndexState::Missing => {
            out.push(Step::Build {
                table: node.table.clone(),
                index: node.index.clone(),
            });
            out.push(attach);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str, state: IndexState) -> Node {
        Node {
            table: format!("public.{name}"),
            index: format!("{name}_i"),
            index_qualified: format!("public.{name}_i"),
            partitioned: false,
            state,
            children: Vec::new(),
        }
    }

    fn parted(name: &str, state: IndexState, children: Vec<Node>) -> Node {
        Node {
            partitioned: true,
            children,
            ..leaf(name, state)
        }
    }

    #[test]
    fn names_fit_and_are_stable() {
        assert_eq!(child_index_name("ev_user", "ev_2024"), "ev_2024_ev_user");
        let long = child_index_name(&"i".repeat(40), &"p".repeat(40));
        assert_eq!(long.len(), MAX_IDENTIFIER);
        assert_eq!(long, child_index_name(&"i".repeat(40), &"p".repeat(40)));
        assert_ne!(long, child_index_name(&"i".repeat(41), &"p".repeat(40)));
        // Multi-byte characters are never cut in half.
        let wide = child_index_name(&"é".repeat(30), &"ü".repeat(30));
        assert!(wide.len() <= MAX_IDENTIFIER);
    }

    #[test]
    fn definition_after_the_table_name() {
        let sql = "CREATE INDEX CONCURRENTLY ev_user ON public.events USING btree (user_id)";
        let at = sql.find("public").unwrap();
        assert_eq!(index_definition(sql, at), Some("USING btree (user_id)"));
        let sql = "create unique index concurrently i on \"My\" . \"T\"\"x\" /* c */ (a, (lower(b))) where a > 0;";
        let at = sql.find("\"My\"").unwrap();
        assert_eq!(
            index_definition(sql, at),
            Some("(a, (lower(b))) where a > 0")
        );
        let sql = "CREATE INDEX CONCURRENTLY i ON t USINGX (a)";
        assert_eq!(index_definition(sql, sql.find(" t ").unwrap() + 1), None);
        let sql = "CREATE INDEX CONCURRENTLY i ON U&\"t\" (a)";
        assert_eq!(index_definition(sql, sql.find("U&").unwrap()), None);
    }

    #[test]
    fn a_fresh_tree() {
        let root = parted(
            "ev",
            IndexState::Missing,
            vec![
                leaf("ev_1", IndexState::Missing),
                parted(
                    "ev_2",
                    IndexState::Missing,
                    vec![leaf("ev_2a", IndexState::Missing)],
                ),
            ],
        );
        let sql: Vec<String> = steps(&root).iter().map(|s| s.sql(false, "(a)")).collect();
        assert_eq!(
            sql,
            [
                "CREATE INDEX ev_i ON ONLY public.ev (a)",
                "CREATE INDEX CONCURRENTLY ev_1_i ON public.ev_1 (a)",
                "ALTER INDEX public.ev_i ATTACH PARTITION public.ev_1_i",
                "CREATE INDEX ev_2_i ON ONLY public.ev_2 (a)",
                "CREATE INDEX CONCURRENTLY ev_2a_i ON public.ev_2a (a)",
                "ALTER INDEX public.ev_2_i ATTACH PARTITION public.ev_2a_i",
                "ALTER INDEX public.ev_i ATTACH PARTITION public.ev_2_i",
            ]
        );
    }

    #[test]
    fn a_rerun_skips_what_is_done_and_cleans_leftovers() {
        let root = parted(
            "ev",
            IndexState::Attached { valid: false },
            vec![
                leaf("ev_1", IndexState::Attached { valid: true }),
                leaf("ev_2", IndexState::Invalid),
                leaf("ev_3", IndexState::Detached),
                parted(
                    "ev_4",
                    IndexState::Invalid,
                    vec![leaf("ev_4a", IndexState::Attached { valid: true })],
                ),
            ],
        );
        let sql: Vec<String> = steps(&root).iter().map(|s| s.sql(true, "(a)")).collect();
        assert_eq!(
            sql,
            [
                "DROP INDEX CONCURRENTLY IF EXISTS public.ev_2_i",
                "CREATE UNIQUE INDEX CONCURRENTLY ev_2_i ON public.ev_2 (a)",
                "ALTER INDEX public.ev_i ATTACH PARTITION public.ev_2_i",
                "ALTER INDEX public.ev_i ATTACH PARTITION public.ev_3_i",
                "ALTER INDEX public.ev_i ATTACH PARTITION public.ev_4_i",
            ]
        );
        let done = parted("ev", IndexState::Attached { valid: true }, vec![]);
        assert!(steps(&done).is_empty());
    }
}
