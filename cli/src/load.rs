//! `load` and `deploy`: a folder's migrations registered with `migrate.add()` in one
//! transaction, then (deploy) `CALL migrate.deploy()` with its NOTICEs and job progress.

use std::path::{Path, PathBuf};

use postgres::{Client, Transaction};

use crate::connect::{self, NoticeSink, Settings};
use crate::error::{self, CliError};
use crate::layout::{self, Layout, MigrationFile};
use crate::output::sql_literal;
use crate::progress::Watcher;

/// A folder read by its layout.
pub struct Folder {
    pub dir: PathBuf,
    pub layout: Layout,
    pub files: Vec<MigrationFile>,
}

impl Folder {
    /// Reads `dir` with `layout`, or the layout detected from its files.
    pub fn read(dir: &Path, layout: Option<Layout>) -> Result<Folder, CliError> {
        let layout = match layout {
            Some(l) => l,
            None => layout::detect(dir)?,
        };
        let files = layout::load(dir, layout)?;
        Ok(Folder {
            dir: dir.to_path_buf(),
            layout,
            files,
        })
    }

    /// The migration of this folder with `version` (in any spelling: `01` is `1`).
    pub fn file(&self, version: &str) -> Option<&MigrationFile> {
        self.files
            .iter()
            .find(|f| migrate_core::version::compare(&f.version, version).is_eq())
    }
}

/// Registers every migration of `folder` in `tx`, each under a savepoint so one refusal does
/// not hide the next; prints one line per migration (only refusals, on stderr, when `quiet`). Returns how
/// many were refused: the caller then rolls back, so nothing is registered.
pub fn register(tx: &mut Transaction, folder: &Folder, quiet: bool) -> Result<usize, CliError> {
    let add =
        tx.prepare("SELECT migrate.add($1::text, $2::text, $3::text, $4::text, $5::text::jsonb)")?;
    let mut refused = 0;
    for file in &folder.files {
        let options = file.options().to_string();
        let mut sp = tx.savepoint("migrate_cli_add")?;
        let result = sp.query_one(
            &add,
            &[&file.version, &file.up, &file.down, &file.name, &options],
        );
        match result {
            Ok(row) => {
                sp.commit()?;
                if !quiet {
                    let outcome: String = row.get(0);
                    println!("{}", line(&outcome, file));
                }
            }
            Err(e) => {
                sp.rollback()?;
                let Some(db) = e.as_db_error() else {
                    return Err(e.into());
                };
                refused += 1;
                // Quiet (a dry run's) stdout is its table or JSON: keep it clean.
                if quiet {
                    eprintln!("{}", line("refused", file));
                } else {
                    println!("{}", line("refused", file));
                }
                let location = error::locate(db.message(), db.detail(), file);
                eprintln!("{location}: {}", error::server_error(db));
            }
        }
    }
    Ok(refused)
}

/// `added     20240101120000  create users`.
fn line(outcome: &str, file: &MigrationFile) -> String {
    format!(
        "{outcome:<9} {}  {}",
        file.version,
        file.name.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_string()
}

/// Registers the folder in one transaction and commits it, or rolls back on any refusal.
fn load_committed(client: &mut Client, folder: &Folder) -> Result<(), CliError> {
    let mut tx = client.transaction()?;
    let refused = register(&mut tx, folder, false)?;
    if refused > 0 {
        tx.rollback()?;
        return Err(refused_error(refused, folder));
    }
    tx.commit()?;
    println!(
        "loaded {} migration(s) from {} ({} layout)",
        folder.files.len(),
        folder.dir.display(),
        folder.layout
    );
    Ok(())
}

pub fn refused_error(refused: usize, folder: &Folder) -> CliError {
    CliError::Failed(format!(
        "{refused} of {} migrations of {} refused; nothing was registered",
        folder.files.len(),
        folder.dir.display()
    ))
}

/// `migrate-cli load DIR`.
pub fn load(config: &Settings, dir: &Path, layout: Option<Layout>) -> Result<(), CliError> {
    let folder = Folder::read(dir, layout)?;
    let mut client = connect::connect(config, connect::to_stdout())?;
    load_committed(&mut client, &folder)
}

/// `migrate-cli deploy DIR [--to VERSION]`.
pub fn deploy(
    config: &Settings,
    dir: &Path,
    layout: Option<Layout>,
    to: Option<&str>,
    allow_out_of_order: bool,
) -> Result<(), CliError> {
    let folder = Folder::read(dir, layout)?;
    // The load prints its NOTICEs in line with its own output; the CALL's go through the
    // watcher, which keeps them in order with the progress it draws.
    let mut loader = connect::connect(config, connect::to_stdout())?;
    load_committed(&mut loader, &folder)?;
    drop(loader);
    let watcher = Watcher::start(config.clone());
    let sink: NoticeSink = watcher.sink();
    let mut client = connect::connect(config, sink)?;
    connect::cancel_on_interrupt(&client, config);
    // A simple query: a procedure may only commit when CALLed on its own, outside a
    // transaction block.
    // The permission is an argument, never a session SET: that would outlive the call on a
    // pooled connection.
    let mut args = Vec::new();
    if let Some(v) = to {
        args.push(format!("target => {}", sql_literal(v)));
    }
    if allow_out_of_order {
        args.push("allow_out_of_order => true".to_string());
    }
    let call = format!("CALL migrate.deploy({})", args.join(", "));
    let result = client.batch_execute(&call);
    watcher.finish();
    result.map_err(|e| {
        // A failed step names its migration: point at the file and line of that script.
        let location = e.as_db_error().and_then(|db| {
            let file = folder.file(error::failed_version(db.message())?)?;
            Some(error::locate(db.message(), db.detail(), file))
        });
        CliError::Db(e, location)
    })
}
