//! `migrate-cli`: a client for the migrate extension's SQL API (see docs/CLI.md). Everything
//! it does goes through the SQL functions a psql user can call too.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod adopt;
mod connect;
mod error;
mod inspect;
mod lint;
mod load;
mod output;
mod pgpass;
mod progress;
mod scaffold;
use migrate_cli::layout;

use error::CliError;
use layout::Layout;
use lint::LintFormat;
use migrate_core::adopt::Tool;
use output::Format;

/// Loads migration folders into the migrate extension's registry, deploys them, lints them.
#[derive(Parser)]
#[command(
    name = "migrate-cli",
    version,
    after_help = "Exit codes: 0 success, 1 failure (the server's SQLSTATE, message, DETAIL and HINT on stderr), 2 usage error. Every subcommand: docs/CLI.md."
)]
struct Cli {
    /// Where to connect: a URL (postgres://user:password@host:port/dbname) or a libpq
    /// key=value string; what it leaves out comes from PGHOST, PGPORT, PGUSER, PGDATABASE,
    /// PGPASSWORD, PGAPPNAME, PGSSLMODE and PGSSLROOTCERT, then libpq's defaults.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Folder {
    /// The migration folder.
    dir: PathBuf,
    /// The folder's layout (default: detected from its files).
    #[arg(long, value_parser = parse_layout)]
    layout: Option<Layout>,
}

#[derive(Subcommand)]
enum Command {
    /// Register every migration of the folder in one transaction (idempotent); nothing is
    /// registered if the registry refuses one.
    Load {
        #[command(flatten)]
        folder: Folder,
    },
    /// Load the folder, then CALL migrate.deploy(): one committed migration at a time, with
    /// the server's NOTICEs and the progress of worker steps.
    Deploy {
        #[command(flatten)]
        folder: Folder,
        /// Deploy to this version (forward or back) instead of the newest.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Also run pending migrations older than the newest applied one (a branch merged
        /// late): migrate.deploy(allow_out_of_order => true).
        #[arg(long)]
        allow_out_of_order: bool,
    },
    /// Take over a database another tool migrated: load the folder (in TOOL's layout) and
    /// mark applied exactly what TOOL's own table lists (migrate.adopt()), in one transaction;
    /// nothing changes if they disagree.
    Adopt {
        /// The tool that migrated the database.
        #[arg(long = "from", value_name = "TOOL", value_parser = parse_tool)]
        from: Tool,
        /// The migration folder, as TOOL lays it out.
        dir: PathBuf,
        /// TOOL's table, if not where TOOL keeps it by default (e.g. app.schema_migrations).
        #[arg(long, value_name = "SCHEMA.TABLE")]
        table: Option<String>,
        /// Show what adopting would do and change nothing; exits 1 on a mismatch.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Every registered migration and its state (migrate.status()); drift from an adopted
    /// tool's table on stderr.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Dry run of a deploy of the folder, statement by statement (migrate.plan()); nothing
    /// persists. Exits 1 if a statement fails.
    Plan {
        #[command(flatten)]
        folder: Folder,
        /// Plan the deploy to this version instead of the newest.
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Check that each pending migration's down script undoes its up script
    /// (migrate.verify()); nothing persists. Exits 1 if one does not.
    Verify {
        #[command(flatten)]
        folder: Folder,
        /// Verify only this pending migration.
        #[arg(long, value_name = "VERSION")]
        migration: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Lint every pending script of the folder with migrate.check(); exits 1 on a finding
    /// that blocks.
    Lint {
        #[command(flatten)]
        folder: Folder,
        #[arg(long, value_enum, default_value_t = LintFormat::Table)]
        format: LintFormat,
    },
    /// Background jobs: backfills and deploy worker steps (the migrate.jobs view).
    Jobs {
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Wait for a job to end, showing its progress; exits 1 if it failed or was cancelled.
    Wait {
        /// The job id (migrate.backfill() returns it; migrate-cli jobs lists them).
        job: i64,
    },
    /// Create the files of a new migration in the folder's own layout, with the next version.
    New {
        /// What the migration does, e.g. "add users email".
        name: String,
        /// The migration folder (created if missing).
        #[arg(default_value = "migrations")]
        dir: PathBuf,
        /// The folder's layout (default: detected; plain for a new folder).
        #[arg(long, value_parser = parse_layout)]
        layout: Option<Layout>,
    },
}

fn parse_tool(name: &str) -> Result<Tool, String> {
    Tool::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Tool::ALL.iter().map(|t| t.name()).collect();
        format!("unknown tool; one of: {}", names.join(", "))
    })
}

fn parse_layout(name: &str) -> Result<Layout, String> {
    Layout::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Layout::ALL.iter().map(|l| l.name()).collect();
        format!("unknown layout; one of: {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrate-cli: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let url = cli.database_url.as_deref();
    let config =
        || connect::settings(url, &|name| std::env::var(name).ok()).map_err(CliError::Usage);
    match cli.command {
        Command::Load { folder } => load::load(&config()?, &folder.dir, folder.layout),
        Command::Deploy {
            folder,
            to,
            allow_out_of_order,
        } => load::deploy(
            &config()?,
            &folder.dir,
            folder.layout,
            to.as_deref(),
            allow_out_of_order,
        ),
        Command::Adopt {
            from,
            dir,
            table,
            dry_run,
            format,
        } => adopt::adopt(&config()?, from, &dir, table.as_deref(), dry_run, format),
        Command::Status { format } => inspect::status(&config()?, format),
        Command::Plan { folder, to, format } => inspect::plan(
            &config()?,
            &folder.dir,
            folder.layout,
            to.as_deref(),
            format,
        ),
        Command::Verify {
            folder,
            migration,
            format,
        } => inspect::verify(
            &config()?,
            &folder.dir,
            folder.layout,
            migration.as_deref(),
            format,
        ),
        Command::Lint { folder, format } => {
            lint::lint(&config()?, &folder.dir, folder.layout, format)
        }
        Command::Jobs { format } => inspect::jobs(&config()?, format),
        Command::Wait { job } => inspect::wait(&config()?, job),
        Command::New { name, dir, layout } => scaffold::new(&dir, layout, &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("migrate-cli").chain(args.iter().copied()))
    }

    #[test]
    fn arguments() {
        let cli = parse(&[
            "deploy",
            "db",
            "--to",
            "3",
            "--layout",
            "plain",
            "--database-url",
            "postgres://h/d",
        ])
        .unwrap();
        assert_eq!(cli.database_url.as_deref(), Some("postgres://h/d"));
        match cli.command {
            Command::Deploy { folder, to, .. } => {
                assert_eq!(folder.dir, PathBuf::from("db"));
                assert_eq!(folder.layout, Some(Layout::Plain));
                assert_eq!(to.as_deref(), Some("3"));
            }
            _ => panic!("not deploy"),
        }
        match parse(&["lint", "db", "--format", "github"])
            .unwrap()
            .command
        {
            Command::Lint { format, .. } => assert_eq!(format, LintFormat::Github),
            _ => panic!("not lint"),
        }
        match parse(&["adopt", "--from", "golang-migrate", "db", "--dry-run"])
            .unwrap()
            .command
        {
            Command::Adopt {
                from, dry_run, dir, ..
            } => {
                assert_eq!(from, Tool::GolangMigrate);
                assert!(dry_run);
                assert_eq!(dir, PathBuf::from("db"));
            }
            _ => panic!("not adopt"),
        }
        match parse(&["new", "add users"]).unwrap().command {
            Command::New { dir, name, .. } => {
                assert_eq!(dir, PathBuf::from("migrations"));
                assert_eq!(name, "add users");
            }
            _ => panic!("not new"),
        }
    }

    #[test]
    fn usage_errors() {
        let kind = |args: &[&str]| parse(args).err().map(|e| e.kind());
        assert_eq!(kind(&["load"]), Some(ErrorKind::MissingRequiredArgument));
        assert_eq!(
            kind(&["load", "d", "--layout", "nope"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["status", "--format", "github"]),
            Some(ErrorKind::InvalidValue)
        );
        assert_eq!(kind(&["wait", "x"]), Some(ErrorKind::ValueValidation));
        assert_eq!(
            kind(&["adopt", "--from", "liquibase", "d"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["adopt", "d"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(kind(&["frobnicate"]), Some(ErrorKind::InvalidSubcommand));
        // Usage errors exit 2, as clap's do by default.
        assert_eq!(parse(&["load"]).err().map(|e| e.exit_code()), Some(2));
    }
}
