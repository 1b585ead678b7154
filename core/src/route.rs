//! Routes through the registry: which migrations `apply`, `rollback`, `baseline` and `deploy`
//! act on, in which order, and every reason to refuse; and the order and dependency checks of
//! `add` ([`find_cycle`]) and `validate` ([`problems`]). No catalog access here: the extension
//! loads the registry, asks this module, and maps a [`PlanError`] to an SQLSTATE. The dry run
//! `migrate.plan()` lives in the extension and shows [`deploy_path`].

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use crate::version;

/// What routes are computed from: one registered migration.
#[derive(Debug, Clone)]
pub struct Entry {
    pub version: String,
    pub applied: bool,
    pub transactional: bool,
    pub reversible: bool,
    pub requires: Vec<String>,
    /// Run again whenever its script changes (Flyway's `R__` migrations): outside version order,
    /// after every versioned migration, never rolled back, never a target.
    pub repeatable: bool,
}

/// Every way a route can be refused.
#[derive(Debug, PartialEq, Eq)]
pub enum PlanError {
    UnknownTarget(String),
    /// The target is a repeatable migration, which has no place in the order.
    RepeatableTarget(String),
    OutOfOrder {
        version: String,
        newest_applied: String,
    },
    NonTransactional {
        version: String,
    },
    MissingRequirement {
        version: String,
        requires: String,
    },
    RequirementNotReady {
        version: String,
        requires: String,
    },
    TooManySteps {
        requested: i64,
        applied: usize,
    },
    Irreversible {
        version: String,
    },
    StillRequired {
        version: String,
        required_by: String,
    },
    AlreadyApplied {
        version: String,
    },
}

impl PlanError {
    /// The migration the error is about, if it names one.
    pub fn version(&self) -> Option<&str> {
        use PlanError::*;
        match self {
            UnknownTarget(v) | RepeatableTarget(v) => Some(v),
            OutOfOrder { version, .. }
            | NonTransactional { version }
            | MissingRequirement { version, .. }
            | RequirementNotReady { version, .. }
            | Irreversible { version }
            | StillRequired { version, .. }
            | AlreadyApplied { version } => Some(version),
            TooManySteps { .. } => None,
        }
    }
}

/// Sorts entries in natural version order.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| version::compare(&a.version, &b.version));
}

fn find<'a>(entries: &'a [Entry], v: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|e| version::compare(&e.version, v) == Ordering::Equal)
}

fn newest_applied(entries: &[Entry]) -> Option<&Entry> {
    entries
        .iter()
        .filter(|e| e.applied && !e.repeatable)
        .max_by(|a, b| version::compare(&a.version, &b.version))
}

/// A target is a versioned migration: repeatable ones have no place in the order.
fn check_target(entries: &[Entry], target: Option<&str>) -> Result<(), PlanError> {
    match target.map(|t| (t, find(entries, t))) {
        Some((t, None)) => Err(PlanError::UnknownTarget(t.to_string())),
        Some((t, Some(e))) if e.repeatable => Err(PlanError::RepeatableTarget(t.to_string())),
        _ => Ok(()),
    }
}

/// Pending migrations up to `target` (inclusive), in the order `apply` runs them.
///
/// `entries` must be sorted. Refuses out-of-order pending versions unless allowed, scripts that
/// need `deploy`, and requirements that are unregistered or would not be applied first.
pub fn apply(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
) -> Result<Vec<usize>, PlanError> {
    apply_steps(entries, target, allow_out_of_order, false)
}

/// [`apply`], optionally allowing non-transactional migrations (which only `deploy` runs).
fn apply_steps(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
    allow_non_transactional: bool,
) -> Result<Vec<usize>, PlanError> {
    check_target(entries, target)?;
    let mut chosen: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.applied && !e.repeatable)
        .filter(|(_, e)| {
            target.is_none_or(|t| version::compare(&e.version, t) != Ordering::Greater)
        })
        .map(|(i, _)| i)
        .collect();

    if let (Some(newest), false) = (newest_applied(entries), allow_out_of_order) {
        if let Some(&i) = chosen
            .iter()
            .find(|&&i| version::compare(&entries[i].version, &newest.version) == Ordering::Less)
        {
            return Err(PlanError::OutOfOrder {
                version: entries[i].version.clone(),
                newest_applied: newest.version.clone(),
            });
        }
    }
    if let Some(&i) = chosen
        .iter()
        .find(|&&i| !entries[i].transactional && !allow_non_transactional)
    {
        return Err(PlanError::NonTransactional {
            version: entries[i].version.clone(),
        });
    }

    // A requirement is met if it is applied or runs earlier in this same route.
    let mut done: HashSet<Vec<u8>> = entries
        .iter()
        .filter(|e| e.applied)
        .map(|e| version::sort_key(&e.version))
        .collect();
    for &i in &chosen {
        let e = &entries[i];
        for r in &e.requires {
            if find(entries, r).is_none() {
                return Err(PlanError::MissingRequirement {
                    version: e.version.clone(),
                    requires: r.clone(),
                });
            }
            if !done.contains(&version::sort_key(r)) {
                return Err(PlanError::RequirementNotReady {
                    version: e.version.clone(),
                    requires: r.clone(),
                });
            }
        }
        done.insert(version::sort_key(&e.version));
    }
    // Repeatable migrations whose script is new or changed run last, in version (name) order,
    // when everything is applied (no target): they are written against the latest schema.
    if target.is_none() {
        chosen.extend((0..entries.len()).filter(|&i| entries[i].repeatable && !entries[i].applied));
    }
    Ok(chosen)
}

/// Applied migrations to roll back, newest first: the last `steps`, or all newer than `target`.
pub fn rollback(
    entries: &[Entry],
    steps: Option<i64>,
    target: Option<&str>,
) -> Result<Vec<usize>, PlanError> {
    rollback_steps(entries, steps, target, false)
}

/// [`rollback`], optionally allowing non-transactional migrations (which only `deploy` runs).
fn rollback_steps(
    entries: &[Entry],
    steps: Option<i64>,
    target: Option<&str>,
    allow_non_transactional: bool,
) -> Result<Vec<usize>, PlanError> {
    check_target(entries, target)?;
    let applied: Vec<usize> = (0..entries.len())
        .rev()
        .filter(|&i| entries[i].applied && !entries[i].repeatable)
        .collect();
    let chosen: Vec<usize> = match (steps, target) {
        (Some(n), _) => {
            if n as usize > applied.len() {
                return Err(PlanError::TooManySteps {
                    requested: n,
                    applied: applied.len(),
                });
            }
            applied[..n as usize].to_vec()
        }
        (None, Some(t)) => applied
            .into_iter()
            .filter(|&i| version::compare(&entries[i].version, t) == Ordering::Greater)
            .collect(),
        (None, None) => Vec::new(),
    };
    let leaving: HashSet<Vec<u8>> = chosen
        .iter()
        .map(|&i| version::sort_key(&entries[i].version))
        .collect();
    for &i in &chosen {
        let e = &entries[i];
        if !e.transactional && !allow_non_transactional {
            return Err(PlanError::NonTransactional {
                version: e.version.clone(),
            });
        }
        if !e.reversible {
            return Err(PlanError::Irreversible {
                version: e.version.clone(),
            });
        }
        // Something that stays applied must not depend on what leaves.
        let key = version::sort_key(&e.version);
        if let Some(dependent) = entries.iter().find(|d| {
            d.applied
                && !leaving.contains(&version::sort_key(&d.version))
                && d.requires.iter().any(|r| version::sort_key(r) == key)
        }) {
            return Err(PlanError::StillRequired {
                version: e.version.clone(),
                required_by: dependent.version.clone(),
            });
        }
    }
    Ok(chosen)
}

/// Which way a deploy step goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Up(usize),
    Down(usize),
}

/// The next step of `deploy(target)`: while an applied migration is newer than `target`, the
/// newest of them goes down; then the first pending one up to `target` (default: all) goes up.
/// `None` when the database is at `target`. Only the next step is checked (the ups are checked
/// together, the downs only as far as the target): a deploy checks its whole path with
/// [`deploy_path`] before its first step, so that it refuses up front what it could not
/// finish, as `plan()` does.
pub fn deploy_next(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
) -> Result<Option<Step>, PlanError> {
    if let Some(t) = target {
        let downs = rollback_steps(entries, None, Some(t), true)?;
        if let Some(&i) = downs.first() {
            return Ok(Some(Step::Down(i)));
        }
    }
    let ups = apply_steps(entries, target, allow_out_of_order, true)?;
    Ok(ups.first().map(|&i| Step::Up(i)))
}

/// Every step `deploy(target)` would take from here, in order.
pub fn deploy_path(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
) -> Result<Vec<Step>, PlanError> {
    let mut state = entries.to_vec();
    let mut path = Vec::new();
    // Each migration moves at most twice (down, then up again): the bound only stops a bug.
    while path.len() <= 2 * entries.len() {
        match deploy_next(&state, target, allow_out_of_order)? {
            None => break,
            Some(step) => {
                let (Step::Up(i) | Step::Down(i)) = step;
                state[i].applied = matches!(step, Step::Up(_));
                path.push(step);
            }
        }
    }
    Ok(path)
}

/// Pending migrations up to and including `target` that `baseline` marks applied. Refused once
/// anything is applied: baselining is for adopting a database, not for skipping migrations.
pub fn baseline(entries: &[Entry], target: &str) -> Result<Vec<usize>, PlanError> {
    check_target(entries, Some(target))?;
    if let Some(e) = newest_applied(entries) {
        return Err(PlanError::AlreadyApplied {
            version: e.version.clone(),
        });
    }
    Ok((0..entries.len())
        .filter(|&i| !entries[i].repeatable)
        .filter(|&i| version::compare(&entries[i].version, target) != Ordering::Greater)
        .collect())
}

/// The first dependency cycle through `start` if its requirements were `requires`, as the path
/// `start -> ... -> start`.
pub fn find_cycle(entries: &[Entry], start: &str, requires: &[String]) -> Option<Vec<String>> {
    let mut graph: HashMap<Vec<u8>, Vec<String>> = entries
        .iter()
        .map(|e| (version::sort_key(&e.version), e.requires.clone()))
        .collect();
    graph.insert(version::sort_key(start), requires.to_vec());
    let target = version::sort_key(start);
    let mut path = vec![start.to_string()];
    let mut seen = HashSet::new();
    fn walk(
        graph: &HashMap<Vec<u8>, Vec<String>>,
        node: &str,
        target: &[u8],
        path: &mut Vec<String>,
        seen: &mut HashSet<Vec<u8>>,
    ) -> bool {
        for next in graph.get(&version::sort_key(node)).into_iter().flatten() {
            path.push(next.clone());
            let key = version::sort_key(next);
            if key == target {
                return true;
            }
            if seen.insert(key) && walk(graph, next, target, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    walk(&graph, start, &target, &mut path, &mut seen).then_some(path)
}

/// A health problem reported by `migrate.validate()`.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub version: String,
    pub problem: &'static str,
    pub detail: String,
}

/// Order and dependency problems (checksums are checked by the caller, which has the text).
pub fn problems(entries: &[Entry]) -> Vec<Problem> {
    let mut out = Vec::new();
    let newest = newest_applied(entries);
    for e in entries {
        if let (false, false, Some(n)) = (e.applied, e.repeatable, newest) {
            if version::compare(&e.version, &n.version) == Ordering::Less {
                out.push(Problem {
                    version: e.version.clone(),
                    problem: "out_of_order",
                    detail: format!(
                        "pending, but older than the newest applied migration {}",
                        n.version
                    ),
                });
            }
        }
        for r in &e.requires {
            match find(entries, r) {
                None => out.push(Problem {
                    version: e.version.clone(),
                    problem: "missing_requirement",
                    detail: format!("requires {r}, which is not registered"),
                }),
                Some(req) if e.applied && !req.applied => out.push(Problem {
                    version: e.version.clone(),
                    problem: "requirement_not_applied",
                    detail: format!("applied, but its requirement {r} is not"),
                }),
                Some(req)
                    if !e.applied
                        && !req.applied
                        && version::compare(&req.version, &e.version) == Ordering::Greater =>
                {
                    out.push(Problem {
                        version: e.version.clone(),
                        problem: "requirement_after",
                        detail: format!("requires {r}, which comes after it in version order"),
                    })
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &str, applied: bool) -> Entry {
        Entry {
            version: v.into(),
            applied,
            transactional: true,
            reversible: true,
            requires: vec![],
            repeatable: false,
        }
    }

    fn versions(entries: &[Entry], idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| entries[i].version.clone()).collect()
    }

    #[test]
    fn repeatable_migrations_run_last_and_never_go_down() {
        let mut es = vec![
            e("1", true),
            e("2", false),
            e("R__views", false),
            e("3", false),
        ];
        es[2].repeatable = true;
        // Outside the order: after every versioned one, and only when applying everything.
        assert_eq!(
            versions(&es, &apply(&es, None, false).unwrap()),
            ["2", "3", "R__views"]
        );
        assert_eq!(
            versions(&es, &apply(&es, Some("3"), false).unwrap()),
            ["2", "3"]
        );
        assert_eq!(
            apply(&es, Some("R__views"), false),
            Err(PlanError::RepeatableTarget("R__views".into()))
        );
        // Applied, it is neither newest applied (no out-of-order) nor rolled back.
        es[2].applied = true;
        assert_eq!(versions(&es, &apply(&es, None, false).unwrap()), ["2", "3"]);
        assert_eq!(versions(&es, &rollback(&es, Some(1), None).unwrap()), ["1"]);
        assert!(problems(&es).is_empty());
        assert_eq!(
            versions(
                &es,
                &baseline(&[e("1", false), es[2].clone()], "1").unwrap()
            ),
            ["1"]
        );
    }

    #[test]
    fn deploy_goes_down_then_up_and_takes_non_transactional_steps() {
        let mut es = vec![e("1", true), e("2", true), e("3", false), e("4", false)];
        es[1].transactional = false;
        es[2].transactional = false;
        assert_eq!(deploy_next(&es, None, false), Ok(Some(Step::Up(2))));
        assert_eq!(deploy_next(&es, Some("1"), false), Ok(Some(Step::Down(1))));
        assert_eq!(deploy_next(&es, Some("2"), false), Ok(None));
        assert_eq!(deploy_next(&es, Some("3"), false), Ok(Some(Step::Up(2))));
        es[2].applied = true;
        es[3].applied = true;
        assert_eq!(deploy_next(&es, None, false), Ok(None));
        assert_eq!(deploy_next(&es, Some("2"), false), Ok(Some(Step::Down(3))));
        es[0].reversible = false;
        assert_eq!(
            deploy_next(&es, Some("0"), false),
            Err(PlanError::UnknownTarget("0".into()))
        );
        es.insert(0, e("0", false));
        assert_eq!(
            deploy_next(&es, Some("0"), false),
            Err(PlanError::Irreversible {
                version: "1".into()
            })
        );
    }

    #[test]
    fn deploy_path_lists_every_step() {
        let es = vec![e("1", true), e("2", true), e("3", false)];
        assert_eq!(deploy_path(&es, Some("1"), false), Ok(vec![Step::Down(1)]));
        assert_eq!(deploy_path(&es, None, false), Ok(vec![Step::Up(2)]));
        let es = vec![e("1", false), e("2", false)];
        assert_eq!(
            deploy_path(&es, None, false),
            Ok(vec![Step::Up(0), Step::Up(1)])
        );
    }

    #[test]
    fn apply_in_natural_order_up_to_target() {
        let mut es = vec![e("10", false), e("2", false), e("1", true)];
        sort(&mut es);
        assert_eq!(
            versions(&es, &apply(&es, None, false).unwrap()),
            ["2", "10"]
        );
        assert_eq!(versions(&es, &apply(&es, Some("2"), false).unwrap()), ["2"]);
        assert_eq!(
            versions(&es, &apply(&es, Some("02"), false).unwrap()),
            ["2"]
        );
        assert_eq!(
            apply(&es, Some("3"), false),
            Err(PlanError::UnknownTarget("3".into()))
        );
    }

    #[test]
    fn out_of_order_is_refused_unless_allowed() {
        let es = vec![e("1", true), e("2", false), e("3", true)];
        assert_eq!(
            apply(&es, None, false),
            Err(PlanError::OutOfOrder {
                version: "2".into(),
                newest_applied: "3".into()
            })
        );
        assert_eq!(versions(&es, &apply(&es, None, true).unwrap()), ["2"]);
    }

    #[test]
    fn non_transactional_needs_deploy() {
        let mut es = vec![e("1", false), e("2", false)];
        es[1].transactional = false;
        assert_eq!(
            apply(&es, None, false),
            Err(PlanError::NonTransactional {
                version: "2".into()
            })
        );
        assert_eq!(versions(&es, &apply(&es, Some("1"), false).unwrap()), ["1"]);
    }

    #[test]
    fn requirements() {
        let mut es = vec![e("1", false), e("2", false), e("3", false)];
        es[2].requires = vec!["1".into()];
        assert!(apply(&es, None, false).is_ok());
        es[1].requires = vec!["3".into()];
        assert_eq!(
            apply(&es, None, false),
            Err(PlanError::RequirementNotReady {
                version: "2".into(),
                requires: "3".into()
            })
        );
        es[1].requires = vec!["9".into()];
        assert_eq!(
            apply(&es, None, false),
            Err(PlanError::MissingRequirement {
                version: "2".into(),
                requires: "9".into()
            })
        );
    }

    #[test]
    fn rollback_rules() {
        let mut es = vec![e("1", true), e("2", true), e("3", true), e("4", false)];
        assert_eq!(
            versions(&es, &rollback(&es, Some(2), None).unwrap()),
            ["3", "2"]
        );
        assert_eq!(
            versions(&es, &rollback(&es, None, Some("1")).unwrap()),
            ["3", "2"]
        );
        assert_eq!(
            rollback(&es, Some(4), None),
            Err(PlanError::TooManySteps {
                requested: 4,
                applied: 3
            })
        );
        es[2].reversible = false;
        assert_eq!(
            rollback(&es, Some(1), None),
            Err(PlanError::Irreversible {
                version: "3".into()
            })
        );
        es[2].reversible = true;
        es[2].requires = vec!["1".into()];
        assert_eq!(
            rollback(&es, None, Some("0")),
            Err(PlanError::UnknownTarget("0".into()))
        );
        assert_eq!(
            versions(&es, &rollback(&es, Some(3), None).unwrap()),
            ["3", "2", "1"]
        );
        es[2].requires = vec!["2".into()];
        assert_eq!(
            rollback(&es, None, Some("1")).map(|v| v.len()),
            Ok(2),
            "both leave together"
        );
        assert_eq!(rollback(&es, None, Some("2")).map(|v| v.len()), Ok(1),);
        // A migration that stays applied (an older one applied out of order) and requires a
        // newer one that leaves: refused.
        es[0].requires = vec!["3".into()];
        assert_eq!(
            rollback(&es, None, Some("2")),
            Err(PlanError::StillRequired {
                version: "3".into(),
                required_by: "1".into()
            })
        );
    }

    #[test]
    fn cycles() {
        let mut es = vec![e("1", false), e("2", false)];
        es[0].requires = vec!["2".into()];
        assert_eq!(
            find_cycle(&es, "2", &["1".into()]),
            Some(vec!["2".into(), "1".into(), "2".into()])
        );
        assert_eq!(
            find_cycle(&es, "3", &["3".into()]),
            Some(vec!["3".into(), "3".into()])
        );
        assert_eq!(find_cycle(&es, "2", &[]), None);
        assert_eq!(find_cycle(&es, "3", &["1".into()]), None);
    }

    #[test]
    fn baseline_only_on_fresh_registry() {
        let es = vec![e("1", false), e("2", false), e("3", false)];
        assert_eq!(baseline(&es, "2").unwrap(), vec![0, 1]);
        let es = vec![e("1", true), e("2", false)];
        assert_eq!(
            baseline(&es, "2"),
            Err(PlanError::AlreadyApplied {
                version: "1".into()
            })
        );
    }

    #[test]
    fn reports_problems() {
        let mut es = vec![e("1", true), e("2", false), e("3", true), e("4", false)];
        es[3].requires = vec!["9".into(), "5".into()];
        es.push(e("5", false));
        es[2].requires = vec!["2".into()];
        let kinds: Vec<_> = problems(&es)
            .iter()
            .map(|p| (p.version.clone(), p.problem))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("2".into(), "out_of_order"),
                ("3".into(), "requirement_not_applied"),
                ("4".into(), "missing_requirement"),
                ("4".into(), "requirement_after"),
            ]
        );
    }
}
