//! Progress of background jobs while a `CALL` runs (`deploy`, `wait`): the main session is
//! busy inside the procedure, so a watcher thread prints the NOTICEs it streams and, while a
//! job runs, polls `migrate.jobs` from a second session: a bar with rate and ETA on a
//! terminal, a plain line every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use postgres::Client;

use crate::connect::{self, NoticeSink, Settings};

enum Event {
    Notice(String),
    Watch(i64),
    Stop,
}

pub struct Watcher {
    events: Sender<Event>,
    thread: JoinHandle<()>,
}

impl Watcher {
    /// Starts the watcher; it connects (with `config`) only once there is a job to watch.
    pub fn start(config: Settings) -> Watcher {
        let (events, received) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut state = State::new(config);
            let mut timeout = state.interval();
            loop {
                match received.recv_timeout(timeout) {
                    Ok(Event::Notice(text)) => {
                        state.print(&text);
                        state.poll();
                    }
                    Ok(Event::Watch(id)) => state.watch(id),
                    Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => state.poll(),
                }
                timeout = state.interval();
            }
            state.poll();
            state.end();
        });
        Watcher { events, thread }
    }

    /// A notice sink for the main session: prints its notices in order with the progress,
    /// and starts watching every job a notice names (`migrate: job 7 runs ...`).
    pub fn sink(&self) -> NoticeSink {
        let events = std::sync::Mutex::new(self.events.clone());
        std::sync::Arc::new(move |notice| {
            let text = connect::print_notice(notice);
            let job = job_in_notice(&text);
            let events = events.lock().unwrap_or_else(|e| e.into_inner());
            let _ = events.send(Event::Notice(text));
            if let Some(id) = job {
                let _ = events.send(Event::Watch(id));
            }
        })
    }

    pub fn watch(&self, id: i64) {
        let _ = self.events.send(Event::Watch(id));
    }

    /// Shows the last state of the job watched and stops.
    pub fn finish(self) {
        let _ = self.events.send(Event::Stop);
        let _ = self.thread.join();
    }
}

/// The job a deploy's NOTICE is about: `migrate: job 7 runs ...`, `migrate: job 7: note`,
/// `migrate: resuming job 7 at statement 2 of 3`.
pub fn job_in_notice(text: &str) -> Option<i64> {
    let rest = text.strip_prefix("migrate: ")?;
    let rest = rest
        .strip_prefix("job ")
        .or_else(|| rest.strip_prefix("resuming job "))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One poll of `migrate.jobs` (plus the index build's progress for a migration job).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub state: String,
    /// The table of a backfill, `version (up)` of a migration job.
    pub subject: String,
    pub rows_done: i64,
    pub rows_estimated: Option<i64>,
    pub percent_done: Option<f64>,
    pub rate: Option<f64>,
    pub eta_secs: Option<f64>,
    pub error: Option<String>,
    pub note: Option<String>,
    /// (done, total) statements of a migration job, from the view's own columns if it has
    /// them (newer servers), else from rows_done / rows_estimated, which count statements.
    pub statements: Option<(i64, i64)>,
    /// (phase, done, total) of a `CREATE INDEX CONCURRENTLY` the job's worker runs.
    pub index_build: Option<(String, i64, i64)>,
}

impl JobRow {
    pub fn finished(&self) -> bool {
        matches!(self.state.as_str(), "succeeded" | "failed" | "cancelled")
    }

    /// What the bar counts: (done, total) rows, statements or index blocks.
    fn counts(&self) -> Option<(u64, u64)> {
        let pair = |d: i64, t: i64| Some((d.max(0) as u64, t.max(0) as u64));
        // Some phases of an index build count nothing (0 of 0): show the statements then.
        if let Some((_, done, total)) = self.index_build.as_ref().filter(|b| b.2 > 0) {
            return pair(*done, *total);
        }
        if let Some((done, total)) = self.statements {
            return pair(done, total);
        }
        pair(self.rows_done, self.rows_estimated?)
    }

    /// How far it is and how fast it goes, without the job's name.
    pub fn summary(&self) -> String {
        let mut parts = vec![self.state.clone()];
        if self.kind == "migration" {
            if let Some((done, total)) = self.statements {
                parts.push(format!("statement {done} of {total} done"));
            }
            if let Some((phase, done, total)) = &self.index_build {
                let percent = if *total > 0 {
                    format!(" {:.1}%", 100.0 * *done as f64 / *total as f64)
                } else {
                    String::new()
                };
                parts.push(format!("index build: {phase}{percent}"));
            }
        } else {
            let mut rows = format!("{} rows", self.rows_done);
            if let Some(estimated) = self.rows_estimated {
                rows = format!("{} of about {estimated} rows", self.rows_done);
            }
            if let Some(p) = self.percent_done {
                rows = format!("{p:.1}% ({rows})");
            }
            parts.push(rows);
            if let Some(rate) = self.rate {
                parts.push(format!("{rate:.0} rows/s"));
            }
            if let Some(eta) = self.eta_secs {
                parts.push(format!("ETA {}", duration(eta)));
            }
        }
        if let Some(note) = self.note.as_deref().map(one_line).filter(|n| !n.is_empty()) {
            parts.push(note);
        }
        if let Some(error) = &self.error {
            parts.push(error.clone());
        }
        parts.join(", ")
    }

    /// The bar's text: what the bar itself does not show (it has the counts).
    fn bar_message(&self) -> String {
        let mut parts = Vec::new();
        if self.state != "running" {
            parts.push(self.state.clone());
        }
        if let Some((phase, _, _)) = &self.index_build {
            parts.push(phase.clone());
        } else if self.kind == "migration" {
            parts.push("statements".into());
        }
        if let Some(rate) = self.rate {
            parts.push(format!("{rate:.0} rows/s"));
        }
        if let Some(eta) = self.eta_secs {
            parts.push(format!("ETA {}", duration(eta)));
        }
        parts.extend(self.note.as_deref().map(one_line).filter(|n| !n.is_empty()));
        parts.join(", ")
    }

    /// `job 7 (backfill public.orders)`.
    pub fn title(&self) -> String {
        format!("job {} ({} {})", self.id, self.kind, self.subject)
    }
}

/// A job's note (it may quote a whole statement) on one short line.
fn one_line(text: &str) -> String {
    const MAX: usize = 80;
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The watcher thread's state: the second session and the job watched.
struct State {
    config: Settings,
    client: Option<Client>,
    /// Set once connecting failed: progress is then not shown, the CALL goes on.
    unavailable: bool,
    has_statement_columns: bool,
    terminal: bool,
    job: Option<Watched>,
}

struct Watched {
    id: i64,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Option<Instant>,
    last: Option<JobRow>,
}

/// How often a plain progress line is printed when stdout is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl State {
    fn new(config: Settings) -> State {
        State {
            config,
            client: None,
            unavailable: false,
            has_statement_columns: false,
            terminal: std::io::stdout().is_terminal(),
            job: None,
        }
    }

    fn interval(&self) -> Duration {
        match (&self.job, self.terminal) {
            (None, _) => Duration::from_secs(3600),
            (Some(_), true) => Duration::from_millis(200),
            (Some(_), false) => Duration::from_secs(1),
        }
    }

    fn print(&self, text: &str) {
        match self.job.as_ref().and_then(|j| j.bar.as_ref()) {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    fn watch(&mut self, id: i64) {
        if self.job.as_ref().is_some_and(|j| j.id == id) {
            return;
        }
        self.poll();
        self.end();
        self.job = Some(Watched {
            id,
            bar: None,
            started: Instant::now(),
            last_line: None,
            last: None,
        });
        self.poll();
    }

    /// The second session, opened on first use; `None` (once, with a warning) if it fails.
    fn client(&mut self) -> Option<&mut Client> {
        if self.client.is_none() && !self.unavailable {
            let mut config = self.config.clone();
            config
                .config
                .application_name(&format!("{} progress", connect::APPLICATION_NAME));
            match connect::connect(&config, std::sync::Arc::new(|_| {})) {
                Ok(mut client) => {
                    self.has_statement_columns = client
                        .query_typed_one(
                            "SELECT count(*) = 2 FROM pg_catalog.pg_attribute \
                             WHERE attrelid = 'migrate.jobs'::pg_catalog.regclass \
                               AND attname IN ('statements_done', 'statements_total') \
                               AND NOT attisdropped",
                            &[],
                        )
                        .is_ok_and(|r| r.get(0));
                    self.client = Some(client);
                }
                Err(e) => {
                    eprintln!("migrate-cli: no progress shown: {e}");
                    self.unavailable = true;
                }
            }
        }
        self.client.as_mut()
    }

    fn fetch(&mut self, id: i64) -> Option<JobRow> {
        let statements = if self.has_statement_columns {
            "j.statements_done::int8, j.statements_total::int8"
        } else {
            "NULL::int8, NULL::int8"
        };
        let sql = format!(
            "SELECT j.kind, j.state, coalesce(j.table_name, j.migration, ''), j.rows_done::int8, \
                    j.rows_estimated::int8, j.percent_done::float8, j.rate::float8, \
                    extract(epoch FROM j.eta)::float8, j.error, j.note, {statements}, \
                    p.phase, p.blocks_done::int8, p.blocks_total::int8 \
             FROM migrate.jobs j \
             LEFT JOIN pg_catalog.pg_stat_progress_create_index p ON p.pid = j.worker_pid \
             WHERE j.id = $1"
        );
        let client = self.client()?;
        // One round trip with an unnamed statement: works behind a transaction-mode pooler.
        let row = client
            .query_typed_opt(sql.as_str(), &[(&id, postgres::types::Type::INT8)])
            .ok()??;
        // Every column as nullable: servers differ in what they fill in for which kind.
        let text = |i: usize| row.try_get::<_, Option<String>>(i).ok().flatten();
        let int = |i: usize| row.try_get::<_, Option<i64>>(i).ok().flatten();
        let float = |i: usize| row.try_get::<_, Option<f64>>(i).ok().flatten();
        let kind = text(0).unwrap_or_default();
        let (rows_done, rows_estimated) = (int(3), int(4));
        let statements = match (int(10), int(11)) {
            (Some(done), Some(total)) => Some((done, total)),
            // Older servers count a migration job's statements in rows_done / rows_estimated.
            _ if kind == "migration" => rows_estimated.map(|t| (rows_done.unwrap_or(0), t)),
            _ => None,
        };
        let index_build = match (text(12), int(13), int(14)) {
            (Some(phase), Some(done), Some(total)) => Some((phase, done, total)),
            _ => None,
        };
        Some(JobRow {
            id,
            kind,
            state: text(1).unwrap_or_default(),
            subject: text(2).unwrap_or_default(),
            rows_done: rows_done.unwrap_or(0),
            rows_estimated,
            percent_done: float(5),
            rate: float(6),
            eta_secs: float(7),
            error: text(8),
            note: text(9),
            statements,
            index_build,
        })
    }

    /// Reads the watched job and shows it; ends the watch when the job has ended.
    fn poll(&mut self) {
        let Some(id) = self.job.as_ref().map(|j| j.id) else {
            return;
        };
        let Some(row) = self.fetch(id) else {
            return;
        };
        let terminal = self.terminal;
        let job = self.job.as_mut().expect("a job is watched");
        if terminal {
            let bar = job.bar.get_or_insert_with(|| new_bar(&row));
            if let Some((done, total)) = row.counts() {
                bar.set_length(total.max(done));
                bar.set_position(done);
            }
            bar.set_message(row.bar_message());
        } else if job.last_line.is_none_or(|t| t.elapsed() >= PLAIN_EVERY) && !row.finished() {
            println!("{}: {}", row.title(), row.summary());
            job.last_line = Some(Instant::now());
        }
        let finished = row.finished();
        job.last = Some(row);
        if finished {
            self.end();
        }
    }

    /// Stops watching: clears the bar and prints how the job ended, if it did.
    fn end(&mut self) {
        let Some(job) = self.job.take() else {
            return;
        };
        if let Some(bar) = &job.bar {
            bar.finish_and_clear();
        }
        if let Some(row) = job.last.filter(JobRow::finished) {
            println!(
                "{}: {} after {}",
                row.title(),
                row.summary(),
                duration(job.started.elapsed().as_secs_f64())
            );
        }
    }
}

fn new_bar(row: &JobRow) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
    let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(row.title());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_named_by_notices() {
        assert_eq!(
            job_in_notice("migrate: job 7 runs its 1 statement(s)"),
            Some(7)
        );
        assert_eq!(
            job_in_notice("migrate: job 12: waiting for a worker"),
            Some(12)
        );
        assert_eq!(
            job_in_notice("migrate: resuming job 3 at statement 2 of 4"),
            Some(3)
        );
        assert_eq!(job_in_notice("migrate: applied 20240101 in 2 ms"), None);
        assert_eq!(job_in_notice("migrate.wait_job: job 3 is paused"), None);
    }

    #[test]
    fn notes_fit_on_a_line() {
        assert_eq!(
            one_line("running statement 1 of 1:\n  CREATE INDEX"),
            "running statement 1 of 1: CREATE INDEX"
        );
        assert_eq!(one_line(&"x".repeat(100)), format!("{}...", "x".repeat(80)));
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0.4), "0 s");
        assert_eq!(duration(42.0), "42 s");
        assert_eq!(duration(185.0), "3 min 5 s");
        assert_eq!(duration(7800.0), "2 h 10 min");
    }

    #[test]
    fn backfill_summary() {
        let row = JobRow {
            id: 1,
            kind: "backfill".into(),
            state: "running".into(),
            subject: "public.orders".into(),
            rows_done: 2_190_000,
            rows_estimated: Some(10_000_000),
            percent_done: Some(21.9),
            rate: Some(431_820.4),
            eta_secs: Some(18.09),
            ..JobRow::default()
        };
        assert_eq!(row.title(), "job 1 (backfill public.orders)");
        assert_eq!(
            row.summary(),
            "running, 21.9% (2190000 of about 10000000 rows), 431820 rows/s, ETA 18 s"
        );
        assert_eq!(row.counts(), Some((2_190_000, 10_000_000)));
        assert_eq!(row.bar_message(), "431820 rows/s, ETA 18 s");
        assert!(!row.finished());
    }

    #[test]
    fn migration_summary() {
        let row = JobRow {
            id: 7,
            kind: "migration".into(),
            state: "running".into(),
            subject: "20240301_02 (up)".into(),
            statements: Some((0, 1)),
            index_build: Some(("building index: scanning table".into(), 50, 200)),
            ..JobRow::default()
        };
        assert_eq!(
            row.summary(),
            "running, statement 0 of 1 done, index build: building index: scanning table 25.0%"
        );
        assert_eq!(row.counts(), Some((50, 200)));
        assert_eq!(row.bar_message(), "building index: scanning table");
        let failed = JobRow {
            state: "failed".into(),
            error: Some("23505: could not create unique index".into()),
            index_build: None,
            ..row
        };
        assert!(failed.finished());
        assert_eq!(
            failed.summary(),
            "failed, statement 0 of 1 done, 23505: could not create unique index"
        );
    }
}
