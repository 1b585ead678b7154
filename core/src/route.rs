//! Routes through the registry: which migrations `apply`, `rollback`, `baseline` and `deploy`
//! act on, in which order, and every reason to refuse; and the order and dependency checks of
//! `add` ([`find_cycle`]) and `validate` ([`problems`]). No catalog access here: the extension
//! loads the registry, asks this module, and maps a [`PlanError`] to an SQLSTATE. The dry run
//! `migrate.plan()` lives in the extension and shows [`deploy_path`].

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};

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
    /// No target, something to apply, and a branch of a graph history with several heads.
    MultipleHeads {
        heads: Heads,
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
            TooManySteps { .. } | MultipleHeads { .. } => None,
        }
    }
}

/// Why a branch of a graph history cannot be deployed without a target: its heads.
pub type Heads = Vec<String>;

/// The registry's order and the dependency facts every route is computed from. It does not
/// depend on which migrations are applied, so one graph serves a whole deploy path.
///
/// **Order.** Migrations run in a topological order of their `requires`: Kahn's algorithm,
/// where among the migrations whose requirements are all placed the first in natural version
/// order ([`version::compare`]) goes next. A history without requirements is in version order;
/// independent migrations keep version order between them. Repeatable migrations take part in
/// no edge (they run after every versioned one).
///
/// **Graph history, branches.** A history is a *graph history* when a versioned migration
/// declares requirements. There, a version `label.rest` whose `label` is an identifier
/// starting with a letter or `_` (Django's `app_label.migration_name`) belongs to branch
/// `label`, any other version to the default branch; a history without requirements has only
/// the default branch.
///
/// **What a migration follows.** One that declares requirements follows those (and what they
/// follow), and the migrations without requirements before it in its branch. One without
/// requirements follows everything before it in its branch: in a history without
/// requirements, everything before it. Targets use this relation: `apply(t)` applies what `t`
/// follows, `rollback_to(t)` rolls back what follows `t`.
///
/// **Heads.** A branch whose every migration but its first declares requirements (Alembic's
/// history, each Django app) is a graph of its own: its heads are its migrations that no
/// migration of the branch requires. More than one head means the graph has not been merged.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Entry indexes in the registry's order.
    order: Vec<usize>,
    /// The position of each entry in `order`.
    position: Vec<usize>,
    /// The registered versioned migrations each entry requires (entry indexes, no duplicates).
    requires: Vec<Vec<usize>>,
    /// The branch of each entry: 0 is the default branch.
    branch: Vec<usize>,
    branches: usize,
    /// Each branch's label (None for the default branch).
    labels: Vec<Option<String>>,
    /// True when a versioned migration declares requirements.
    graph: bool,
}

/// The branch label of `version` in a graph history: `label` of `label.rest` when `label` is
/// an identifier that starts with a letter or `_`, as Django's app labels are.
pub fn branch_label(version: &str) -> Option<&str> {
    let (label, rest) = version.split_once('.')?;
    let mut chars = label.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !rest.is_empty())
    .then_some(label)
}

impl Graph {
    pub fn new(entries: &[Entry]) -> Graph {
        let n = entries.len();
        let keys: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| version::sort_key(&e.version))
            .collect();
        let index: HashMap<&[u8], usize> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_slice(), i))
            .collect();
        let graph = entries
            .iter()
            .any(|e| !e.repeatable && !e.requires.is_empty());
        let requires: Vec<Vec<usize>> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut out = Vec::new();
                if e.repeatable {
                    return out;
                }
                for r in &e.requires {
                    if let Some(&j) = index.get(version::sort_key(r).as_slice()) {
                        if j != i && !entries[j].repeatable && !out.contains(&j) {
                            out.push(j);
                        }
                    }
                }
                out
            })
            .collect();

        let mut waiting: Vec<usize> = requires.iter().map(Vec::len).collect();
        let mut dependents = vec![Vec::new(); n];
        for (i, reqs) in requires.iter().enumerate() {
            for &r in reqs {
                dependents[r].push(i);
            }
        }
        let mut ready: BinaryHeap<Reverse<(&[u8], usize)>> = (0..n)
            .filter(|&i| waiting[i] == 0)
            .map(|i| Reverse((keys[i].as_slice(), i)))
            .collect();
        let mut order = Vec::with_capacity(n);
        let mut placed = vec![false; n];
        loop {
            while let Some(Reverse((_, i))) = ready.pop() {
                if placed[i] {
                    continue;
                }
                order.push(i);
                placed[i] = true;
                for &d in &dependents[i] {
                    waiting[d] = waiting[d].saturating_sub(1);
                    if waiting[d] == 0 && !placed[d] {
                        ready.push(Reverse((keys[d].as_slice(), d)));
                    }
                }
            }
            // A cycle (add() refuses them) leaves no migration ready: the first of the rest
            // in version order goes next.
            match (0..n)
                .filter(|&i| !placed[i])
                .min_by(|&a, &b| keys[a].cmp(&keys[b]))
            {
                Some(i) => ready.push(Reverse((keys[i].as_slice(), i))),
                None => break,
            }
        }
        let mut position = vec![0; n];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }

        let mut labels: Vec<Option<String>> = vec![None];
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let branch = entries
            .iter()
            .map(|e| match branch_label(&e.version).filter(|_| graph) {
                Some(label) => *ids.entry(label).or_insert_with(|| {
                    labels.push(Some(label.to_string()));
                    labels.len() - 1
                }),
                None => 0,
            })
            .collect();
        Graph {
            order,
            position,
            requires,
            branch,
            branches: labels.len(),
            labels,
            graph,
        }
    }

    /// Entry indexes in the registry's order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// True when a versioned migration declares requirements.
    pub fn is_graph(&self) -> bool {
        self.graph
    }

    /// Entry `i` precedes entry `j` in the order.
    fn before(&self, i: usize, j: usize) -> bool {
        self.position[i] < self.position[j]
    }

    /// `target` and every migration it follows (see [`Graph`]), by entry index.
    pub fn needed_by(&self, entries: &[Entry], target: usize) -> Vec<bool> {
        let mut needed = vec![false; entries.len()];
        needed[target] = true;
        // Everything (`all`) or every migration without requirements (`free`) before these
        // positions of each branch is needed: what the needed ones seen so far follow. What
        // a migration follows comes before it in the order, so one pass from the last to the
        // first finds it all; only a cycle (add() refuses them) needs another.
        let mut all = vec![0; self.branches];
        let mut free = vec![0; self.branches];
        loop {
            let mut changed = false;
            for p in (0..self.order.len()).rev() {
                let i = self.order[p];
                let e = &entries[i];
                if e.repeatable {
                    continue;
                }
                let b = self.branch[i];
                let linear = e.requires.is_empty();
                if !(needed[i] || p < all[b] || (linear && p < free[b])) {
                    continue;
                }
                needed[i] = true;
                for &r in &self.requires[i] {
                    changed |= !needed[r] && self.position[r] > p;
                    needed[r] = true;
                }
                if linear {
                    all[b] = all[b].max(p);
                } else {
                    free[b] = free[b].max(p);
                }
            }
            if !changed {
                return needed;
            }
        }
    }

    /// Every migration that follows `target` (see [`Graph`]) through one of its own branch,
    /// by entry index; not `target`. In the default branch (every history but a Django one)
    /// that is everything that follows it.
    pub fn dependents_of(&self, entries: &[Entry], target: usize) -> Vec<bool> {
        let n = entries.len();
        let mut marked = vec![false; n];
        marked[target] = true;
        // The first position of a marked migration (`any`) and of a marked one without
        // requirements (`free`) in each branch. One pass from the first to the last finds
        // everything, but for a cycle (add() refuses them).
        let mut required_earlier = vec![false; n];
        for (d, reqs) in self.requires.iter().enumerate() {
            for &r in reqs {
                required_earlier[r] |= self.position[r] > self.position[d];
            }
        }
        let mut any = vec![usize::MAX; self.branches];
        let mut free = vec![usize::MAX; self.branches];
        let b = self.branch[target];
        any[b] = self.position[target];
        if entries[target].requires.is_empty() {
            free[b] = self.position[target];
        }
        loop {
            let mut changed = false;
            for (p, &i) in self.order.iter().enumerate() {
                let e = &entries[i];
                if e.repeatable || marked[i] {
                    continue;
                }
                let b = self.branch[i];
                let linear = e.requires.is_empty();
                // The target leads only into its own branch (Django: a target keeps the
                // other apps' migrations that require it, as `migrate app target` does).
                if self.requires[i]
                    .iter()
                    .any(|&r| marked[r] && (r != target || b == self.branch[target]))
                    || (linear && any[b] < p)
                    || (!linear && free[b] < p)
                {
                    marked[i] = true;
                    // Marks only reach later positions, except along a requirement that
                    // points forward (a cycle).
                    changed |= required_earlier[i];
                    any[b] = any[b].min(p);
                    if linear {
                        free[b] = free[b].min(p);
                    }
                }
            }
            if !changed {
                break;
            }
        }
        marked[target] = false;
        marked
    }

    /// The newest applied versioned migration of each branch (the last in the order).
    fn newest_applied(&self, entries: &[Entry]) -> Vec<Option<usize>> {
        let mut newest = vec![None; self.branches];
        for &i in &self.order {
            if entries[i].applied && !entries[i].repeatable {
                newest[self.branch[i]] = Some(i);
            }
        }
        newest
    }

    /// The newest applied migration of `i`'s branch (`newest`: [`Graph::newest_applied`]) if
    /// `i` is pending, has no requirements and comes before it: `i` is out of order.
    fn out_of_order(&self, entries: &[Entry], newest: &[Option<usize>], i: usize) -> Option<usize> {
        let e = &entries[i];
        if e.applied || e.repeatable || !e.requires.is_empty() {
            return None;
        }
        newest[self.branch[i]].filter(|&n| self.before(i, n))
    }

    /// The branches (label, heads in order) that have more than one head (see [`Graph`]).
    pub fn heads(&self, entries: &[Entry]) -> Vec<(Option<&str>, Vec<usize>)> {
        if !self.graph {
            return Vec::new();
        }
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.branches];
        for &i in &self.order {
            if !entries[i].repeatable {
                members[self.branch[i]].push(i);
            }
        }
        let mut out = Vec::new();
        for (b, m) in members.iter().enumerate() {
            // Where a migration after the first has no requirements, the order joins the
            // lines before it: not a graph of its own.
            if m.len() < 2 || m[1..].iter().any(|&i| entries[i].requires.is_empty()) {
                continue;
            }
            let required: HashSet<usize> = m
                .iter()
                .flat_map(|&i| self.requires[i].iter().copied())
                .collect();
            let heads: Vec<usize> = m
                .iter()
                .enumerate()
                .filter(|&(k, &i)| {
                    !(required.contains(&i) || (k == 0 && entries[i].requires.is_empty()))
                })
                .map(|(_, &i)| i)
                .collect();
            if heads.len() > 1 {
                out.push((self.labels[b].as_deref(), heads));
            }
        }
        out
    }
}

/// Sorts entries in natural version order.
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| version::compare(&a.version, &b.version));
}

/// Entry indexes of `entries` in the registry's order (see [`Graph`]).
pub fn order(entries: &[Entry]) -> Vec<usize> {
    Graph::new(entries).order
}

fn find<'a>(entries: &'a [Entry], v: &str) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|e| version::compare(&e.version, v) == Ordering::Equal)
}

fn find_index(entries: &[Entry], v: &str) -> Option<usize> {
    entries
        .iter()
        .position(|e| version::compare(&e.version, v) == Ordering::Equal)
}

/// A target is a versioned migration: repeatable ones have no place in the order.
fn check_target(entries: &[Entry], target: Option<&str>) -> Result<Option<usize>, PlanError> {
    match target.map(|t| (t, find_index(entries, t))) {
        None => Ok(None),
        Some((t, None)) => Err(PlanError::UnknownTarget(t.to_string())),
        Some((t, Some(i))) if entries[i].repeatable => {
            Err(PlanError::RepeatableTarget(t.to_string()))
        }
        Some((_, Some(i))) => Ok(Some(i)),
    }
}

/// Pending migrations up to `target` (inclusive), in the order `apply` runs them: without a
/// target every pending one, with one `target` and what it follows (see [`Graph`]); in a
/// history without requirements, the pending versions up to `target`.
///
/// Refuses, without a target, a graph history with several heads; pending migrations without
/// requirements that come before the newest applied one of their branch (out of order) unless
/// allowed; scripts that need `deploy`; and requirements that are unregistered or would not be
/// applied first.
pub fn apply(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
) -> Result<Vec<usize>, PlanError> {
    apply_steps(
        entries,
        &Graph::new(entries),
        target,
        allow_out_of_order,
        false,
    )
}

/// [`apply`], optionally allowing non-transactional migrations (which only `deploy` runs).
fn apply_steps(
    entries: &[Entry],
    graph: &Graph,
    target: Option<&str>,
    allow_out_of_order: bool,
    allow_non_transactional: bool,
) -> Result<Vec<usize>, PlanError> {
    let target = check_target(entries, target)?;
    let needed = target.map(|t| graph.needed_by(entries, t));
    let mut chosen: Vec<usize> = graph
        .order
        .iter()
        .copied()
        .filter(|&i| !entries[i].applied && !entries[i].repeatable)
        .filter(|&i| needed.as_ref().is_none_or(|n| n[i]))
        .collect();

    if target.is_none() && !chosen.is_empty() {
        if let Some((_, heads)) = graph.heads(entries).into_iter().next() {
            return Err(PlanError::MultipleHeads {
                heads: heads.iter().map(|&i| entries[i].version.clone()).collect(),
            });
        }
    }
    if !allow_out_of_order {
        let newest = graph.newest_applied(entries);
        if let Some((i, newest)) = chosen
            .iter()
            .find_map(|&i| graph.out_of_order(entries, &newest, i).map(|n| (i, n)))
        {
            return Err(PlanError::OutOfOrder {
                version: entries[i].version.clone(),
                newest_applied: entries[newest].version.clone(),
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
        chosen.extend(
            graph
                .order
                .iter()
                .copied()
                .filter(|&i| entries[i].repeatable && !entries[i].applied),
        );
    }
    Ok(chosen)
}

/// Applied migrations to roll back, the last in the order first: the last `steps`, or every
/// one that follows `target` (see [`Graph`]; in a history without requirements, every applied
/// version after `target`).
pub fn rollback(
    entries: &[Entry],
    steps: Option<i64>,
    target: Option<&str>,
) -> Result<Vec<usize>, PlanError> {
    rollback_steps(entries, &Graph::new(entries), steps, target, false)
}

/// [`rollback`], optionally allowing non-transactional migrations (which only `deploy` runs).
fn rollback_steps(
    entries: &[Entry],
    graph: &Graph,
    steps: Option<i64>,
    target: Option<&str>,
    allow_non_transactional: bool,
) -> Result<Vec<usize>, PlanError> {
    let target = check_target(entries, target)?;
    let applied: Vec<usize> = graph
        .order
        .iter()
        .rev()
        .copied()
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
        (None, Some(t)) => {
            // What the target needs stays, even where a cycle makes it follow the target too.
            let following = graph.dependents_of(entries, t);
            let needed = graph.needed_by(entries, t);
            applied
                .into_iter()
                .filter(|&i| following[i] && !needed[i])
                .collect()
        }
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

/// The next step of `deploy(target)`: while an applied migration follows `target`, the last
/// of them in the order goes down; then the first pending one `target` needs (default: all)
/// goes up. `None` when the database is at `target`. Only the next step is checked (the ups
/// are checked together, the downs only as far as the target): a deploy checks its whole path
/// with [`deploy_path`] before its first step, so that it refuses up front what it could not
/// finish, as `plan()` does.
pub fn deploy_next(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
) -> Result<Option<Step>, PlanError> {
    deploy_next_in(entries, &Graph::new(entries), target, allow_out_of_order)
}

fn deploy_next_in(
    entries: &[Entry],
    graph: &Graph,
    target: Option<&str>,
    allow_out_of_order: bool,
) -> Result<Option<Step>, PlanError> {
    if target.is_some() {
        let downs = rollback_steps(entries, graph, None, target, true)?;
        if let Some(&i) = downs.first() {
            return Ok(Some(Step::Down(i)));
        }
    }
    let ups = apply_steps(entries, graph, target, allow_out_of_order, true)?;
    Ok(ups.first().map(|&i| Step::Up(i)))
}

/// Every step `deploy(target)` would take from here, in order.
pub fn deploy_path(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
) -> Result<Vec<Step>, PlanError> {
    let graph = Graph::new(entries);
    let mut state = entries.to_vec();
    let mut path = Vec::new();
    // Each migration moves at most twice (down, then up again): the bound only stops a bug.
    while path.len() <= 2 * entries.len() {
        match deploy_next_in(&state, &graph, target, allow_out_of_order)? {
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

/// Pending migrations that `baseline` marks applied, in order: `target` and what it follows
/// (in a history without requirements, every version up to `target`). Refused once anything
/// is applied: baselining is for adopting a database, not for skipping migrations.
pub fn baseline(entries: &[Entry], target: &str) -> Result<Vec<usize>, PlanError> {
    let t = check_target(entries, Some(target))?.expect("a target was given");
    let graph = Graph::new(entries);
    if let Some(&i) = graph
        .order
        .iter()
        .rfind(|&&i| entries[i].applied && !entries[i].repeatable)
    {
        return Err(PlanError::AlreadyApplied {
            version: entries[i].version.clone(),
        });
    }
    let needed = graph.needed_by(entries, t);
    Ok(graph
        .order
        .iter()
        .copied()
        .filter(|&i| !entries[i].repeatable && needed[i])
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

/// Order and dependency problems (checksums are checked by the caller, which has the text),
/// migration by migration in the registry's order, then the heads of each unmerged branch.
pub fn problems(entries: &[Entry]) -> Vec<Problem> {
    let graph = Graph::new(entries);
    let newest = graph.newest_applied(entries);
    let mut out = Vec::new();
    for &i in &graph.order {
        let e = &entries[i];
        if let Some(n) = graph.out_of_order(entries, &newest, i) {
            out.push(Problem {
                version: e.version.clone(),
                problem: "out_of_order",
                detail: format!(
                    "pending, but older than the newest applied migration {}",
                    entries[n].version
                ),
            });
        }
        for r in &e.requires {
            match find_index(entries, r) {
                None => out.push(Problem {
                    version: e.version.clone(),
                    problem: "missing_requirement",
                    detail: format!("requires {r}, which is not registered"),
                }),
                Some(j) if e.applied && !entries[j].applied => out.push(Problem {
                    version: e.version.clone(),
                    problem: "requirement_not_applied",
                    detail: format!("applied, but its requirement {r} is not"),
                }),
                // The order puts every requirement first, except a repeatable one (those run
                // last) and one in a cycle.
                Some(j)
                    if !e.applied
                        && !entries[j].applied
                        && !e.repeatable
                        && (entries[j].repeatable || graph.before(i, j)) =>
                {
                    out.push(Problem {
                        version: e.version.clone(),
                        problem: "requirement_after",
                        detail: if entries[j].repeatable {
                            format!(
                                "requires {r}, a repeatable migration, which runs after every versioned one"
                            )
                        } else {
                            format!("requires {r}, which comes after it in the order (a dependency cycle)")
                        },
                    })
                }
                _ => {}
            }
        }
    }
    for (label, heads) in graph.heads(entries) {
        let names: Vec<&str> = heads.iter().map(|&i| entries[i].version.as_str()).collect();
        for &h in &heads {
            out.push(Problem {
                version: entries[h].version.clone(),
                problem: "multiple_heads",
                detail: format!(
                    "one of {} heads{}: {}; add a merge migration that requires all of them \
                     (alembic merge heads, Django makemigrations --merge)",
                    heads.len(),
                    label.map(|l| format!(" of {l}")).unwrap_or_default(),
                    names.join(", ")
                ),
            });
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
        // A requirement later in version order goes first (0.1.0 refused this).
        es[1].requires = vec!["3".into()];
        assert_eq!(
            versions(&es, &apply(&es, None, false).unwrap()),
            ["1", "3", "2"]
        );
        // Only a repeatable requirement (repeatables run last) is never ready first.
        es.push(e("R__v", false));
        es[3].repeatable = true;
        es[1].requires = vec!["R__v".into()];
        es[2].requires = vec!["1".into(), "2".into()];
        assert_eq!(
            apply(&es, None, false),
            Err(PlanError::RequirementNotReady {
                version: "2".into(),
                requires: "R__v".into()
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
        // A migration that requires a later version comes after it in the order, so it
        // leaves first (0.1.0 refused this with StillRequired).
        es[0].requires = vec!["3".into()];
        assert_eq!(
            versions(&es, &rollback(&es, None, Some("2")).unwrap()),
            ["1", "3"]
        );
        // Only a cycle (which add() refuses) can leave a dependant behind: refused.
        es[2].requires = vec!["1".into()];
        assert_eq!(
            rollback(&es, Some(1), None),
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
            ]
        );
        // 4 requires 5, which the order puts first: no requirement_after (0.1.0 reported it).
        es[3].requires = vec!["5".into(), "R__v".into()];
        es.push(e("R__v", false));
        es[5].repeatable = true;
        assert_eq!(
            problems(&es)
                .iter()
                .map(|p| (p.version.as_str(), p.problem))
                .collect::<Vec<_>>(),
            [
                ("2", "out_of_order"),
                ("3", "requirement_not_applied"),
                ("4", "requirement_after")
            ]
        );
    }

    fn needs(v: &str, applied: bool, requires: &[&str]) -> Entry {
        Entry {
            requires: requires.iter().map(|r| r.to_string()).collect(),
            ..e(v, applied)
        }
    }

    fn ordered(es: &[Entry]) -> Vec<String> {
        versions(es, &order(es))
    }

    #[test]
    fn the_order_follows_requirements_then_versions() {
        // Alembic's random revision ids: the graph decides, not the ids.
        let es = vec![
            needs("ae1027a6acf", false, &["1975ea83b712"]),
            needs("1975ea83b712", false, &[]),
            needs("27c6a30d7c24", false, &["ae1027a6acf"]),
        ];
        assert_eq!(
            ordered(&es),
            ["1975ea83b712", "ae1027a6acf", "27c6a30d7c24"]
        );
        assert!(problems(&es).is_empty());
        assert_eq!(
            versions(&es, &apply(&es, None, false).unwrap()),
            ["1975ea83b712", "ae1027a6acf", "27c6a30d7c24"]
        );
        // Independent migrations keep version order between them.
        let es = vec![
            needs("3", false, &["1"]),
            needs("1", false, &[]),
            needs("2", false, &["1"]),
            needs("4", false, &["2", "3"]),
        ];
        assert_eq!(ordered(&es), ["1", "2", "3", "4"]);
        let es = vec![needs("1", false, &["9"]), needs("9", false, &[])];
        assert_eq!(ordered(&es), ["9", "1"]);
    }

    #[test]
    fn heads_need_a_merge() {
        // a -> b and a -> c: two heads; deploy() without a target refuses, with one it takes
        // that head's ancestors only.
        let mut es = vec![
            needs("a", true, &[]),
            needs("b", false, &["a"]),
            needs("c", false, &["a"]),
        ];
        let heads = vec!["b".to_string(), "c".to_string()];
        assert_eq!(
            deploy_path(&es, None, false),
            Err(PlanError::MultipleHeads {
                heads: heads.clone()
            })
        );
        assert_eq!(
            apply(&es, None, false),
            Err(PlanError::MultipleHeads { heads })
        );
        assert_eq!(deploy_path(&es, Some("c"), false), Ok(vec![Step::Up(2)]));
        let kinds: Vec<_> = problems(&es)
            .into_iter()
            .map(|p| (p.version, p.problem))
            .collect();
        assert_eq!(
            kinds,
            [
                ("b".to_string(), "multiple_heads"),
                ("c".to_string(), "multiple_heads")
            ]
        );
        // Both heads applied: nothing to do, still reported.
        es[1].applied = true;
        es[2].applied = true;
        assert_eq!(deploy_path(&es, None, false), Ok(vec![]));
        // A merge migration resolves it.
        es.push(needs("d", false, &["b", "c"]));
        assert!(problems(&es).is_empty());
        assert_eq!(deploy_path(&es, None, false), Ok(vec![Step::Up(3)]));
        // Back to a: what follows it goes down, the last first.
        es[3].applied = true;
        assert_eq!(
            deploy_path(&es, Some("a"), false),
            Ok(vec![Step::Down(3), Step::Down(2), Step::Down(1)])
        );
        // Where a migration after the first has no requirements, the order joins the lines:
        // not a graph of its own, no heads.
        let es = vec![
            needs("1", false, &[]),
            needs("2", false, &[]),
            needs("3", false, &["1"]),
            needs("4", false, &["1"]),
        ];
        assert!(problems(&es).is_empty());
        assert_eq!(versions(&es, &apply(&es, None, false).unwrap()).len(), 4);
    }

    #[test]
    fn targets_take_what_they_follow() {
        // Without requirements: everything up to the target, as ever. 3 requires 1 only: it
        // follows 1 and the migrations without requirements before it (2), not the ones with
        // requirements of their own.
        let es = vec![
            needs("1", false, &[]),
            needs("2", false, &[]),
            needs("3", false, &["1"]),
            needs("4", false, &["1"]),
            needs("5", false, &[]),
        ];
        assert_eq!(
            versions(&es, &apply(&es, Some("4"), false).unwrap()),
            ["1", "2", "4"]
        );
        assert_eq!(
            versions(&es, &apply(&es, Some("5"), false).unwrap()),
            ["1", "2", "3", "4", "5"]
        );
        let all: Vec<Entry> = es
            .iter()
            .map(|x| Entry {
                applied: true,
                ..x.clone()
            })
            .collect();
        assert_eq!(
            versions(&all, &rollback(&all, None, Some("3")).unwrap()),
            ["5"]
        );
        assert_eq!(
            versions(&all, &rollback(&all, None, Some("2")).unwrap()),
            ["5", "4", "3"]
        );
        // Out of order is for migrations without requirements only.
        let mut es = vec![e("1", true), e("3", true), needs("2", false, &["1"])];
        assert_eq!(versions(&es, &apply(&es, None, false).unwrap()), ["2"]);
        es[2].requires.clear();
        assert_eq!(
            apply(&es, None, false),
            Err(PlanError::OutOfOrder {
                version: "2".into(),
                newest_applied: "3".into()
            })
        );
    }

    #[test]
    fn django_apps_are_branches() {
        let mut es = vec![
            needs("blog.0001_initial", false, &[]),
            needs("blog.0002_tags", false, &["blog.0001_initial"]),
            needs("shop.0001_initial", false, &["blog.0001_initial"]),
            needs(
                "shop.0002_order_tags",
                false,
                &["shop.0001_initial", "blog.0002_tags"],
            ),
        ];
        assert_eq!(branch_label("blog.0001_initial"), Some("blog"));
        assert_eq!(branch_label("1.2"), None);
        // One head per app: two apps are not two heads.
        assert!(problems(&es).is_empty());
        assert_eq!(deploy_path(&es, None, false).map(|p| p.len()), Ok(4));
        // An app's own two heads are.
        es.push(needs("blog.0003_a", false, &["blog.0002_tags"]));
        es.push(needs("blog.0003_b", false, &["blog.0002_tags"]));
        let heads: Vec<_> = problems(&es)
            .into_iter()
            .map(|p| (p.version, p.detail))
            .collect();
        assert_eq!(heads.len(), 2);
        assert!(heads[0]
            .1
            .starts_with("one of 2 heads of blog: blog.0003_a, blog.0003_b"));
        es.truncate(4);
        for x in &mut es {
            x.applied = true;
        }
        // `migrate blog 0001`: blog's later migrations and what follows them go down; shop's
        // first, which only needs blog.0001, stays.
        assert_eq!(
            versions(
                &es,
                &rollback(&es, None, Some("blog.0001_initial")).unwrap()
            ),
            ["shop.0002_order_tags", "blog.0002_tags"]
        );
        // A new app's first migration, without dependencies, is not out of order.
        es.push(needs("accounts.0001_initial", false, &[]));
        assert_eq!(ordered(&es)[0], "accounts.0001_initial");
        assert!(problems(&es).is_empty());
        assert_eq!(
            versions(&es, &apply(&es, None, false).unwrap()),
            ["accounts.0001_initial"]
        );
    }
}
