//! `status` (with the drift from an adopted tool's table), `plan`, `verify`, `jobs` and `wait`: the SQL functions' and views' answers, and
//! the dry runs of a folder (its migrations registered in a transaction that is rolled back).

use std::path::Path;

use crate::connect::Settings;

use crate::connect;
use crate::error::CliError;
use crate::layout::Layout;
use crate::load::{self, Folder};
use crate::output::{self, sql_literal, Format, Table};
use crate::progress::Watcher;

/// `migrate-cli status`.
pub fn status(config: &Settings, format: Format) -> Result<(), CliError> {
    let mut client = connect::connect(config, connect::to_stderr())?;
    output::show(&mut client, "SELECT * FROM migrate.status()", format)?;
    for line in crate::adopt::drift_lines(&mut client)? {
        eprintln!("{line}");
    }
    Ok(())
}

/// `migrate-cli jobs`.
pub fn jobs(config: &Settings, format: Format) -> Result<(), CliError> {
    let mut client = connect::connect(config, connect::to_stderr())?;
    output::show(
        &mut client,
        "SELECT * FROM migrate.jobs ORDER BY id",
        format,
    )?;
    Ok(())
}

/// `SELECT * FROM migrate.FUNCTION(ARG)` with the folder registered in a transaction that is
/// rolled back: what would happen, with nothing changed.
fn dry_run(
    config: &Settings,
    dir: &Path,
    layout: Option<Layout>,
    function: &str,
    arg: Option<&str>,
    format: Format,
) -> Result<Table, CliError> {
    let folder = Folder::read(dir, layout)?;
    let mut client = connect::connect(config, connect::to_stderr())?;
    let mut tx = client.transaction()?;
    let refused = load::register(&mut tx, &folder, true)?;
    if refused > 0 {
        tx.rollback()?;
        return Err(load::refused_error(refused, &folder));
    }
    let arg = arg.map(sql_literal).unwrap_or_default();
    let result = output::show(
        &mut tx,
        &format!("SELECT * FROM migrate.{function}({arg})"),
        format,
    );
    tx.rollback()?;
    Ok(result?)
}

/// `migrate-cli plan DIR [--to VERSION]`: fails if a statement of the plan fails.
pub fn plan(
    config: &Settings,
    dir: &Path,
    layout: Option<Layout>,
    to: Option<&str>,
    format: Format,
) -> Result<(), CliError> {
    let table = dry_run(config, dir, layout, "plan", to, format)?;
    if table.any_set("error") {
        return Err(CliError::Failed("a statement of the plan fails".into()));
    }
    Ok(())
}

/// `migrate-cli verify DIR [--migration VERSION]`.
pub fn verify(
    config: &Settings,
    dir: &Path,
    layout: Option<Layout>,
    migration: Option<&str>,
    format: Format,
) -> Result<(), CliError> {
    let table = dry_run(config, dir, layout, "verify", migration, format)?;
    if table.any_bool("ok", false) {
        return Err(CliError::Failed(
            "a down script does not undo its up script (rows with ok = false)".into(),
        ));
    }
    Ok(())
}

/// `migrate-cli wait JOB`: `CALL migrate.wait_job()` decides how the wait ends (and raises if
/// the job failed or was cancelled); a second session shows the progress meanwhile.
pub fn wait(config: &Settings, job: i64) -> Result<(), CliError> {
    let watcher = Watcher::start(config.clone());
    let mut client = connect::connect(config, watcher.sink())?;
    connect::cancel_on_interrupt(&client, config);
    watcher.watch(job);
    let result = client.batch_execute(&format!("CALL migrate.wait_job({job})"));
    watcher.finish();
    Ok(result?)
}
