//! Every fixture of `pg_test/fixtures/layouts/` (made by the real tools where they install here,
//! see each README.md) read through `detect` and `load`, against what each tool's own rules say
//! the folder holds. No database needed.

use std::path::{Path, PathBuf};

use migrate_cli::layout::{self, Layout, MigrationFile};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pg_test/fixtures")
}

/// What one migration should look like: version, name, has a down script, `transactional`,
/// repeatable.
type Expect<'a> = (&'a str, &'a str, bool, Option<bool>, bool);

fn check(fixture: &str, layout: Layout, expect: &[Expect<'_>]) -> Vec<MigrationFile> {
    let dir = fixtures().join("layouts").join(fixture);
    assert_eq!(
        layout::detect(&dir).unwrap(),
        layout,
        "{fixture}: detected layout"
    );
    let got = layout::load(&dir, layout).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let seen: Vec<Expect<'_>> = got
        .iter()
        .map(|m| {
            (
                m.version.as_str(),
                m.name.as_deref().unwrap_or(""),
                m.down.is_some(),
                m.transactional,
                m.repeatable,
            )
        })
        .collect();
    assert_eq!(seen, expect, "{fixture}");
    for m in &got {
        assert!(m.requires.is_empty());
        assert_eq!(
            m.down.is_some(),
            m.down_path.is_some(),
            "{fixture} {}",
            m.version
        );
    }
    got
}

/// For layouts with one file per script: the scripts are the files, byte for byte.
fn scripts_are_files(migrations: &[MigrationFile]) {
    for m in migrations {
        assert_eq!(m.up, std::fs::read_to_string(&m.up_path).unwrap());
        assert_eq!(m.up_line, 1);
        if let Some(path) = &m.down_path {
            assert_eq!(
                m.down.as_deref().unwrap(),
                std::fs::read_to_string(path).unwrap()
            );
        }
    }
}

#[test]
fn diesel_fixture() {
    // diesel_cli 2.3 names folders YYYY-MM-DD-HHMMSS-0000_name; diesel stores that prefix
    // without dashes (see the README's __diesel_schema_migrations listing); the registry
    // version keeps the counter apart so that older 14-digit versions still order by date.
    let m = check(
        "diesel",
        Layout::Diesel,
        &[
            ("00000000000000", "diesel_initial_setup", true, None, false),
            ("20261201234025-0000", "create_users", true, None, false),
            ("20261201234026-0000", "add_posts", true, None, false),
            (
                "20261201234028-0000",
                "index_posts_user_id",
                true,
                Some(false),
                false,
            ),
            ("20261201234029-0000", "add_users_name", false, None, false),
        ],
    );
    scripts_are_files(&m);
    assert!(m[1].up.starts_with("-- Your SQL goes here\n"));
}

#[test]
fn golang_migrate_fixture() {
    let m = check(
        "golang_migrate",
        Layout::GolangMigrate,
        &[
            ("1", "create_users", true, None, false),
            ("2", "add_posts", true, None, false),
            ("3", "index_posts_user_id", true, None, false),
            ("10", "add_users_name", false, None, false),
        ],
    );
    scripts_are_files(&m);
}

#[test]
fn flyway_fixture() {
    let m = check(
        "flyway",
        Layout::Flyway,
        &[
            ("1", "Create users", true, None, false),
            ("1.1", "Add posts", true, None, false),
            ("1.2", "Index posts user id", false, None, false),
            ("2", "Add users name", false, None, false),
            (
                "R__Post_count_function",
                "Post count function",
                false,
                None,
                true,
            ),
            ("R__User_post_counts", "User post counts", false, None, true),
        ],
    );
    scripts_are_files(&m);
    assert!(m[3].up_path.ends_with("release_2/V2__Add_users_name.sql"));
    assert!(m[0]
        .down_path
        .as_ref()
        .unwrap()
        .ends_with("U1__Create_users.sql"));
}

#[test]
fn sqlx_fixture() {
    // Descriptions as sqlx stores them: `_` shown as a space (see `sqlx migrate info`).
    let m = check(
        "sqlx",
        Layout::Sqlx,
        &[
            ("20261201234012", "create users", false, None, false),
            ("20261201234014", "add posts", false, None, false),
            (
                "20261201234015",
                "index posts user id",
                false,
                Some(false),
                false,
            ),
        ],
    );
    scripts_are_files(&m);
}

#[test]
fn sqlx_reversible_fixture() {
    // Named like golang-migrate's files; sqlx's `-- no-transaction` tells them apart.
    let m = check(
        "sqlx_reversible",
        Layout::Sqlx,
        &[
            ("1", "create users", true, None, false),
            ("2", "add posts", true, None, false),
            ("3", "index posts user id", true, Some(false), false),
        ],
    );
    scripts_are_files(&m);
}

#[test]
fn dbmate_fixture() {
    let m = check(
        "dbmate",
        Layout::Dbmate,
        &[
            ("20261201234029", "create_users", true, None, false),
            ("20261201234030", "add_posts", true, None, false),
            (
                "20261201234032",
                "index_posts_user_id",
                true,
                Some(false),
                false,
            ),
        ],
    );
    // The sections, and the file lines they start on.
    let file = std::fs::read_to_string(&m[0].up_path).unwrap();
    assert_eq!(m[0].up_line, 2);
    assert!(m[0].up.starts_with("CREATE TABLE users (\n"));
    assert!(m[0].up.ends_with(");\n\n"));
    assert_eq!(m[0].down.as_deref(), Some("DROP TABLE users;\n"));
    assert_eq!(
        file.lines().nth(m[0].down_line - 2),
        Some("-- migrate:down")
    );
    assert_eq!(
        m[2].down.as_deref(),
        Some("DROP INDEX CONCURRENTLY posts_user_id_idx;\n")
    );
}

#[test]
fn drizzle_fixture() {
    // Versions are the journal's `when`, as in __drizzle_migrations.created_at.
    let m = check(
        "drizzle",
        Layout::Drizzle,
        &[
            ("1796168442157", "0000_create_users", false, None, false),
            ("1796168442513", "0001_add_posts", false, None, false),
        ],
    );
    scripts_are_files(&m);
    assert_eq!(m[1].up.matches("--> statement-breakpoint").count(), 2);
}

#[test]
fn prisma_fixture() {
    let m = check(
        "prisma",
        Layout::Prisma,
        &[
            ("20261201234814", "create_users", false, None, false),
            ("20261201234826", "add_posts", false, None, false),
        ],
    );
    scripts_are_files(&m);
}

#[test]
fn every_fixture_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(fixtures().join("layouts"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_type()
                .unwrap()
                .is_dir()
                .then(|| e.file_name().into_string().unwrap())
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            "dbmate",
            "diesel",
            "drizzle",
            "flyway",
            "golang_migrate",
            "prisma",
            "sqlx",
            "sqlx_reversible"
        ]
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `new` in a copy of every fixture: the folder is still its layout, reads back with the new
/// migration last under its name, and every earlier migration unchanged.
#[test]
fn new_in_every_fixture() {
    // (fixture, layout, the new migration's name as the layout reads it, files written)
    let cases = [
        ("diesel", Layout::Diesel, "add_orders", 2),
        ("golang_migrate", Layout::GolangMigrate, "add_orders", 2),
        ("flyway", Layout::Flyway, "Add orders", 2),
        ("sqlx", Layout::Sqlx, "add orders", 1),
        ("sqlx_reversible", Layout::Sqlx, "add orders", 2),
        ("dbmate", Layout::Dbmate, "add_orders", 1),
        ("prisma", Layout::Prisma, "add_orders", 1),
        ("drizzle", Layout::Drizzle, "0002_add_orders", 2),
    ];
    let root = std::env::temp_dir().join(format!("migrate-cli-new-{}", std::process::id()));
    for (fixture, layout, name, count) in cases {
        let dir = root.join(fixture);
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&fixtures().join("layouts").join(fixture), &dir);
        let before = layout::load(&dir, layout).unwrap();
        let files = layout::scaffold(&dir, layout, "Add orders")
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
        assert_eq!(files.len(), count, "{fixture}: {files:?}");
        assert_eq!(layout::detect(&dir).unwrap(), layout, "{fixture}");
        let after: Vec<MigrationFile> = layout::load(&dir, layout).unwrap();
        let versioned = |m: &[MigrationFile]| -> Vec<MigrationFile> {
            m.iter().filter(|m| !m.repeatable).cloned().collect()
        };
        let (old, new) = (versioned(&before), versioned(&after));
        assert_eq!(new.len(), old.len() + 1, "{fixture}");
        assert_eq!(new[..old.len()], old[..], "{fixture}");
        let last = new.last().unwrap();
        assert_eq!(last.up_path, files[0].path, "{fixture}");
        assert_eq!(last.name.as_deref(), Some(name), "{fixture}");
        // Comment-only scripts: every line blank or a comment.
        let comments = |s: &str| {
            s.lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
        };
        assert!(comments(&last.up), "{fixture}: {:?}", last.up);
        assert!(last.down.as_deref().is_none_or(comments), "{fixture}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// crates.io's 285 diesel migrations, converted by `pg_test/fixtures/histories/make.sh` into
/// every layout: each must read back as the same history, in the same order.
#[test]
fn cratesio_history_in_every_layout() {
    let out = std::env::temp_dir().join(format!("migrate-cli-histories-{}", std::process::id()));
    let status = std::process::Command::new("bash")
        .arg(fixtures().join("histories/make.sh"))
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "make.sh failed");

    let original = layout::load(
        &fixtures().join("histories/cratesio/migrations"),
        Layout::Diesel,
    )
    .unwrap();
    assert_eq!(original.len(), 285);
    let no_tx = original
        .iter()
        .filter(|m| m.transactional == Some(false))
        .count();
    assert_eq!(
        no_tx, 7,
        "crates.io's run_in_transaction = false migrations"
    );
    // Names compared with spaces as `_` (Flyway and sqlx show `_` as a space).
    let normal = |name: &Option<String>| name.as_deref().unwrap_or("").replace(' ', "_");

    // (folder, layout, has downs, has its own transaction marker)
    let cases = [
        ("diesel", Layout::Diesel, true, true),
        ("plain", Layout::Plain, true, false),
        ("golang_migrate", Layout::GolangMigrate, true, false),
        ("flyway", Layout::Flyway, true, true),
        ("sqlx", Layout::Sqlx, true, true),
        ("dbmate", Layout::Dbmate, true, true),
        ("prisma", Layout::Prisma, false, false),
        ("drizzle", Layout::Drizzle, false, false),
    ];
    for (folder, expected, downs, marker) in cases {
        let dir = out.join(folder);
        assert_eq!(layout::detect(&dir).unwrap(), expected, "{folder}");
        let got = layout::load(&dir, expected).unwrap_or_else(|e| panic!("{folder}: {e}"));
        assert_eq!(got.len(), original.len(), "{folder}");
        let mut previous_ts: Option<u64> = None;
        for (i, (m, o)) in got.iter().zip(&original).enumerate() {
            let what = format!("{folder} {} ({})", m.version, o.version);
            match folder {
                "diesel" | "plain" => assert_eq!(m.version, o.version, "{what}"),
                "golang_migrate" | "sqlx" | "flyway" => {
                    assert_eq!(m.version, (i + 1).to_string(), "{what}")
                }
                "drizzle" => {
                    assert_eq!(m.version, (1_700_000_000_000 + i as u64 * 1000).to_string())
                }
                _ => {
                    // dbmate, Prisma: diesel's timestamp, a second later where taken.
                    let ts: u64 = o.version[..14].parse().unwrap();
                    let got: u64 = m.version.parse().unwrap();
                    assert_eq!(m.version.len(), 14, "{what}");
                    let expected = match previous_ts {
                        Some(p) if ts <= p => p + 1,
                        _ => ts,
                    };
                    assert_eq!(got, expected, "{what}");
                    previous_ts = Some(got);
                }
            }
            if folder == "drizzle" {
                assert_eq!(m.name.as_deref().unwrap()[5..], *o.name.as_deref().unwrap());
            } else {
                assert_eq!(normal(&m.name), normal(&o.name), "{what}");
            }
            // The up script is diesel's, after the layout's own marker line if it has one.
            let up =
                m.up.strip_prefix("-- migrate:no-transaction\n")
                    .or_else(|| m.up.strip_prefix("-- no-transaction\n"))
                    .unwrap_or(&m.up);
            assert_eq!(up.trim_end(), o.up.trim_end(), "{what}");
            if downs {
                let down = m.down.as_deref().map(str::trim_end);
                assert_eq!(down, o.down.as_deref().map(str::trim_end), "{what}");
            } else {
                assert_eq!(m.down, None, "{what}");
            }
            let expected_tx = if marker { o.transactional } else { None };
            assert_eq!(m.transactional, expected_tx, "{what}");
        }
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// (version, name, has a down script, transactional, requires) of a graph-ordered fixture.
type GraphExpect<'a> = (&'a str, &'a str, bool, Option<bool>, &'a [&'a str]);
type GraphSeen = (String, String, bool, Option<bool>, Vec<String>);

fn check_graph(dir: &Path, layout: Layout, expect: &[GraphExpect<'_>]) -> Vec<MigrationFile> {
    assert_eq!(layout::detect(dir).unwrap(), layout, "{}", dir.display());
    let got = layout::load(dir, layout).unwrap_or_else(|e| panic!("{e}"));
    let seen: Vec<GraphSeen> = got
        .iter()
        .map(|m| {
            (
                m.version.clone(),
                m.name.clone().unwrap_or_default(),
                m.down.is_some(),
                m.transactional,
                m.requires.clone(),
            )
        })
        .collect();
    let expect: Vec<GraphSeen> = expect
        .iter()
        .map(|(v, n, d, t, r)| {
            (
                v.to_string(),
                n.to_string(),
                *d,
                *t,
                r.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(seen, expect);
    // `new` is the tool's job.
    let e = layout::scaffold(dir, layout, "x").unwrap_err().to_string();
    assert!(e.contains("writes its"), "{e}");
    got
}

#[test]
fn alembic_fixture() {
    // Made by alembic init / revision / merge (pg_test/fixtures/alembic/README.md); the
    // revision ids sort in another order than the graph, which the registry follows.
    let dir = fixtures().join("alembic/migrations");
    let m = check_graph(
        &dir,
        Layout::Alembic,
        &[
            ("f3a9c2d1e8b7", "create_account_table", true, None, &[]),
            (
                "1c4e7a9b3d2f",
                "create_invoice_table",
                true,
                None,
                &["f3a9c2d1e8b7"],
            ),
            (
                "2b3c4d5e6f70",
                "index_invoice_account_concurrently",
                true,
                Some(false),
                &["1c4e7a9b3d2f"],
            ),
            (
                "9e8d7c6b5a41",
                "add_account_email",
                true,
                None,
                &["1c4e7a9b3d2f"],
            ),
            (
                "7a6b5c4d3e21",
                "merge_heads",
                true,
                None,
                &["2b3c4d5e6f70", "9e8d7c6b5a41"],
            ),
            (
                "0d1e2f3a4b5c",
                "create_audit_log",
                true,
                None,
                &["7a6b5c4d3e21", "9e8d7c6b5a41"],
            ),
        ],
    );
    // The project folder (alembic.ini) stands for its script_location.
    let project = fixtures().join("alembic");
    assert_eq!(layout::detect(&project).unwrap(), Layout::Alembic);
    assert_eq!(layout::load(&project, Layout::Alembic).unwrap(), m);
    // The autocommit block's statement alone, without Alembic's COMMIT/BEGIN around it.
    assert_eq!(
        m[2].up.trim(),
        "CREATE INDEX CONCURRENTLY invoice_account_id_idx ON invoice (account_id);"
    );
    assert!(m.iter().all(|m| !m.up.contains("alembic_version")));
    assert!(m
        .iter()
        .all(|m| !m.down.as_deref().unwrap().contains("alembic_version")));
    // Lines point into upgrade.sql.
    let text = std::fs::read_to_string(dir.join("upgrade.sql")).unwrap();
    let line = text.lines().nth(m[1].up_line - 1 + 1).unwrap();
    assert_eq!(line, "CREATE TABLE invoice (");
}

#[test]
fn django_fixture() {
    // Exported from the sample project by cli/django/export_migrations.py (make.sh).
    let dir = fixtures().join("django/export");
    let m = layout::load(&dir, Layout::Django).unwrap();
    assert_eq!(layout::detect(&dir).unwrap(), Layout::Django);
    let find = |v: &str| m.iter().find(|f| f.version == v).unwrap();
    let pos = |v: &str| m.iter().position(|f| f.version == v).unwrap();
    assert_eq!(m.len(), 21);
    // The swappable AUTH_USER_MODEL dependency, resolved to auth's first migration; and
    // blog's squashed migration standing for the two it replaces (nothing was applied where
    // the export ran), as the dependency on blog.0001_initial.
    assert_eq!(
        find("shop.0001_initial").requires,
        ["auth.0001_initial", "blog.0001_squashed_0002_post_slug"]
    );
    assert!(!m.iter().any(|f| f.version == "blog.0001_initial"));
    let index = find("shop.0002_order_created_idx");
    assert_eq!(index.transactional, Some(false));
    assert!(index.up.contains("CREATE INDEX CONCURRENTLY"));
    assert!(find("blog.0003_fill_slugs").down.is_none());
    assert_eq!(
        find("blog.0005_merge").requires,
        ["blog.0004_post_published", "blog.0004_post_views"]
    );
    assert_eq!(find("shop.0001_initial").name.as_deref(), Some("initial"));
    // Requirements first, then version order.
    for f in &m {
        for r in &f.requires {
            assert!(pos(r) < pos(&f.version), "{r} before {}", f.version);
        }
    }
    // blog's migrations need nothing outside blog: version order puts them before
    // contenttypes' first, which auth's first needs.
    let first: Vec<&str> = m[..7].iter().map(|f| f.version.as_str()).collect();
    assert_eq!(
        first,
        [
            "blog.0001_squashed_0002_post_slug",
            "blog.0003_fill_slugs",
            "blog.0004_post_published",
            "blog.0004_post_views",
            "blog.0005_merge",
            "contenttypes.0001_initial",
            "auth.0001_initial"
        ]
    );
    let e = layout::scaffold(&dir, Layout::Django, "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("makemigrations"), "{e}");
}
