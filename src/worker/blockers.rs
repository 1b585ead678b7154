//! The transactions a concurrent index build waits for, as the role asking may see them: the
//! worker reports them before a build (in the job's note), `deploy()` while the build waits (in
//! a NOTICE). Read from `pg_stat_activity` with the privileges of whoever runs it, never more
//! (see `src/queries/snapshot_holders.sql`).

use pgrx::pg_sys;
use pgrx::prelude::*;

/// A session a concurrent build waits for.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: i32,
    pub role: Option<String>,
    /// None when pg_stat_activity hides it from this role (so are age and query).
    pub state: Option<String>,
    pub age: Option<String>,
    pub query: Option<String>,
    pub application_name: Option<String>,
    pub holds_snapshot: bool,
    pub writes_table: bool,
}

/// The sessions a build on `table` would wait for now (pids None), or what this role may see of
/// the sessions `pids`; never the running deploy's own backend (it holds a snapshot only for
/// the moment it polls the job).
pub fn holders(table: Option<pg_sys::Oid>, pids: Option<&[i32]>) -> Vec<Holder> {
    let exclude: Vec<i32> =
        crate::pg::security::as_registry_owner(crate::registry::catalog::running_deploy)
            .into_iter()
            .collect();
    const SQL: &str = include_str!("../queries/snapshot_holders.sql");
    Spi::connect(|client| {
        let what = "list the transactions a concurrent build waits for";
        let rows = client
            .select(
                SQL,
                None,
                &[
                    table.into(),
                    pids.map(|p| p.to_vec()).into(),
                    exclude.into(),
                ],
            )
            .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"));
        rows.into_iter()
            .map(|row| {
                let text = |name: &str| {
                    row.get_by_name::<String, _>(name)
                        .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
                };
                let flag = |name: &str| {
                    row.get_by_name::<bool, _>(name)
                        .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
                        .unwrap_or(false)
                };
                let state = text("state");
                Holder {
                    // pg_stat_activity says "<insufficient privilege>" where it hides the query.
                    query: state.as_ref().and(text("query")),
                    state,
                    pid: row
                        .get_by_name::<i32, _>("pid")
                        .unwrap_or_else(|e| error!("migrate: could not {what}: {e}"))
                        .unwrap_or_default(),
                    role: text("role"),
                    age: text("age"),
                    application_name: text("application_name"),
                    holds_snapshot: flag("holds_snapshot"),
                    writes_table: flag("writes_table"),
                }
            })
            .collect()
    })
}

impl Holder {
    /// One line: pid, role, state, how long its transaction is open, why the build waits for
    /// it, and with `query`, what it runs (when this role may see it).
    pub fn describe(&self, query: bool) -> String {
        let mut parts = vec![format!(
            "role {}",
            self.role.as_deref().unwrap_or("(unknown)")
        )];
        match &self.state {
            Some(state) => {
                parts.push(state.clone());
                if let Some(age) = &self.age {
                    parts.push(format!("transaction open {age}"));
                }
            }
            None => parts.push(
                "state hidden: pg_stat_activity shows it only to its role and pg_read_all_stats"
                    .into(),
            ),
        }
        if let Some(app) = &self.application_name {
            parts.push(format!("application {app}"));
        }
        match (self.holds_snapshot, self.writes_table) {
            (true, true) => parts.push("holds a snapshot and a lock on the table".into()),
            (true, false) => parts.push("holds a snapshot".into()),
            (false, true) => parts.push("holds a lock on the table".into()),
            (false, false) => {}
        }
        let mut line = format!("pid {} ({})", self.pid, parts.join(", "));
        if let (true, Some(q)) = (query, &self.query) {
            line = format!("{line}: {q}");
        }
        line
    }
}

/// The holders, one after another; `idle in transaction` ones come first (the query's order).
pub fn summary(holders: &[Holder], query: bool) -> String {
    holders
        .iter()
        .map(|h| h.describe(query))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The pids a backend is waiting for in the lock manager (a concurrent build waits for other
/// transactions as lock waits on their virtual transaction ids). Anyone may ask.
pub fn blocking_pids(pid: i32) -> Vec<i32> {
    crate::pg::query::one::<Vec<i32>>("SELECT pg_catalog.pg_blocking_pids($1)", &[pid.into()])
        .unwrap_or_default()
}
