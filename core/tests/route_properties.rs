//! Properties of the routes through a registry, on random registries: random version sets
//! (spelled with random leading zeros), random applied subsets, flags and requirements, and
//! random targets (registered, spelled differently, or unknown).
//!
//! Each check is stated from the outside: the exact route expected when nothing stands in the
//! way, and for a refusal, that what it names is really there. Both together mean a route is
//! refused exactly when something stands in its way.

use std::cmp::Ordering;
use std::collections::HashSet;

use migrate_core::route::{self, Entry, PlanError, Step};
use migrate_core::version::compare;
use proptest::prelude::*;
use proptest::sample::Index;

fn same(a: &str, b: &str) -> bool {
    compare(a, b) == Ordering::Equal
}

/// Version order, the order of a history without requirements (and 0.1.0's for every history).
fn at_most(v: &str, target: Option<&str>) -> bool {
    target.is_none_or(|t| compare(v, t) != Ordering::Greater)
}

fn registered(entries: &[Entry], v: &str) -> bool {
    entries.iter().any(|e| same(&e.version, v))
}

fn position(entries: &[Entry], v: &str) -> Option<usize> {
    entries.iter().position(|e| e.version == v)
}

fn index_of(entries: &[Entry], v: &str) -> Option<usize> {
    entries.iter().position(|e| same(&e.version, v))
}

// The model of the registry's order, written the slow and obvious way (the library's is
// Kahn's algorithm with a heap): see migrate_core::route::Graph. The generated versions are
// numbers, so every migration is in the default branch.

/// The registered versioned migrations `i` requires, itself excluded.
fn requirements(entries: &[Entry], i: usize) -> Vec<usize> {
    if entries[i].repeatable {
        return Vec::new();
    }
    entries[i]
        .requires
        .iter()
        .filter_map(|r| index_of(entries, r))
        .filter(|&j| j != i && !entries[j].repeatable)
        .collect()
}

/// Repeatedly the first, in version order, of the migrations whose requirements are all
/// placed; when none is (a cycle), the first in version order of the rest.
fn model_order(entries: &[Entry]) -> Vec<usize> {
    let mut placed: Vec<usize> = Vec::new();
    let by_version = |a: &usize, b: &usize| compare(&entries[*a].version, &entries[*b].version);
    while placed.len() < entries.len() {
        let rest: Vec<usize> = (0..entries.len()).filter(|i| !placed.contains(i)).collect();
        let ready = rest
            .iter()
            .copied()
            .filter(|&i| requirements(entries, i).iter().all(|r| placed.contains(r)))
            .min_by(by_version);
        placed.push(ready.unwrap_or_else(|| rest.iter().copied().min_by(by_version).unwrap()));
    }
    placed
}

fn pos(order: &[usize], i: usize) -> usize {
    order.iter().position(|&j| j == i).unwrap()
}

fn is_graph(entries: &[Entry]) -> bool {
    entries
        .iter()
        .any(|e| !e.repeatable && !e.requires.is_empty())
}

/// What `i` directly follows: its requirements and the migrations without requirements before
/// it; everything before it if it has no requirements.
fn follows(entries: &[Entry], order: &[usize], i: usize) -> Vec<usize> {
    let mut out = requirements(entries, i);
    let linear = entries[i].requires.is_empty();
    out.extend(
        order[..pos(order, i)]
            .iter()
            .copied()
            .filter(|&j| !entries[j].repeatable && (linear || entries[j].requires.is_empty())),
    );
    out
}

/// `t` and everything it follows, directly or not.
fn needed(entries: &[Entry], t: usize) -> Vec<bool> {
    let order = model_order(entries);
    let mut needed = vec![false; entries.len()];
    let mut todo = vec![t];
    while let Some(i) = todo.pop() {
        if !needed[i] {
            needed[i] = true;
            todo.extend(follows(entries, &order, i));
        }
    }
    needed
}

/// Everything that follows `t`, directly or not, but what `t` needs (the same only in a cycle).
fn dependents(entries: &[Entry], t: usize) -> Vec<bool> {
    let needs = needed(entries, t);
    (0..entries.len())
        .map(|i| !needs[i] && !entries[i].repeatable && needed(entries, i)[t])
        .collect()
}

/// Needed by the target (with none: everything).
fn wanted_by(entries: &[Entry], target: Option<&str>) -> Vec<bool> {
    match target.and_then(|t| index_of(entries, t)) {
        Some(t) => needed(entries, t),
        None => vec![true; entries.len()],
    }
}

/// The heads of the history when it is one graph (every migration after the first declares
/// requirements) with more than one.
fn model_heads(entries: &[Entry]) -> Vec<usize> {
    let order: Vec<usize> = model_order(entries)
        .into_iter()
        .filter(|&i| !entries[i].repeatable)
        .collect();
    if !is_graph(entries)
        || order.len() < 2
        || order[1..].iter().any(|&i| entries[i].requires.is_empty())
    {
        return Vec::new();
    }
    let heads: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|&(k, &i)| {
            let first_without_requirements = k == 0 && entries[i].requires.is_empty();
            let required = order.iter().any(|&j| requirements(entries, j).contains(&i));
            !(first_without_requirements || required)
        })
        .map(|(_, &i)| i)
        .collect();
    if heads.len() > 1 {
        heads
    } else {
        Vec::new()
    }
}

/// The newest applied migration: the last one in the order.
fn newest_applied(entries: &[Entry]) -> Option<&str> {
    model_order(entries)
        .into_iter()
        .rev()
        .find(|&i| entries[i].applied && !entries[i].repeatable)
        .map(|i| entries[i].version.as_str())
}

/// Pending migrations the target needs, in the order.
fn pending_up_to(entries: &[Entry], target: Option<&str>) -> Vec<usize> {
    let wanted = wanted_by(entries, target);
    model_order(entries)
        .into_iter()
        .filter(|&i| !entries[i].applied && !entries[i].repeatable && wanted[i])
        .collect()
}

fn applied_newest_first(entries: &[Entry]) -> Vec<usize> {
    model_order(entries)
        .into_iter()
        .rev()
        .filter(|&i| entries[i].applied && !entries[i].repeatable)
        .collect()
}

/// Applied migrations that follow the target, the last first.
fn applied_after(entries: &[Entry], target: &str) -> Vec<usize> {
    let t = index_of(entries, target).unwrap();
    let following = dependents(entries, t);
    applied_newest_first(entries)
        .into_iter()
        .filter(|&i| following[i])
        .collect()
}

fn spelled(number: u16, zeros: usize) -> String {
    format!("{}{number}", "0".repeat(zeros))
}

/// A registry in version order, with up to `max_len` migrations and anything in it: applied
/// out of order, non-transactional or irreversible migrations, requirements on later,
/// unregistered or not yet applied versions. A share `in_order` of them have the oldest
/// migrations applied, as a registry only ever applied in order has.
fn any_registry(max_len: usize, in_order: f64) -> impl Strategy<Value = Vec<Entry>> {
    // A requirement names an older version mostly, else any registered one or an unknown one.
    let requirement = (0u8..10, any::<Index>(), 40u16..45);
    let attributes = (
        0usize..2,
        any::<bool>(),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.85),
        prop::collection::vec(requirement, 0..=2),
    );
    prop::collection::btree_set(0u16..40, 0..=max_len)
        .prop_flat_map(move |numbers| {
            let n = numbers.len();
            (
                Just(numbers.into_iter().collect::<Vec<_>>()),
                prop::collection::vec(attributes.clone(), n),
                prop::option::weighted(in_order, 0..=n),
            )
        })
        .prop_map(|(numbers, attributes, applied_oldest)| {
            let requirement = |of: usize, (kind, pick, unknown): &(u8, Index, u16)| match kind {
                0..=6 if of > 0 => numbers[pick.index(of)].to_string(),
                0..=8 => numbers[pick.index(numbers.len())].to_string(),
                _ => unknown.to_string(),
            };
            attributes
                .iter()
                .enumerate()
                .map(
                    |(i, (zeros, applied, transactional, reversible, requires))| Entry {
                        version: spelled(numbers[i], *zeros),
                        applied: applied_oldest.map_or(*applied, |oldest| i < oldest),
                        transactional: *transactional,
                        reversible: *reversible,
                        requires: requires.iter().map(|r| requirement(i, r)).collect(),
                        repeatable: false,
                    },
                )
                .collect()
        })
}

/// A registry with nothing in the way: the applied migrations are the oldest ones, every
/// script is transactional and reversible, and migrations require only older ones.
fn clean_registry(max_len: usize) -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::btree_set(0u16..40, 0..=max_len)
        .prop_flat_map(|numbers| {
            let n = numbers.len();
            (
                Just(numbers),
                0..=n,
                prop::collection::vec(prop::collection::vec(any::<Index>(), 0..=2), n),
            )
        })
        .prop_map(|(numbers, applied, requires)| {
            let versions: Vec<String> = numbers.iter().map(u16::to_string).collect();
            (0..versions.len())
                .map(|i| Entry {
                    version: versions[i].clone(),
                    applied: i < applied,
                    transactional: true,
                    reversible: true,
                    requires: match i {
                        0 => Vec::new(),
                        _ => requires[i]
                            .iter()
                            .map(|r| versions[r.index(i)].clone())
                            .collect(),
                    },
                    repeatable: false,
                })
                .collect()
        })
}

/// A target for `entries`: none, a registered version (sometimes with leading zeros), or
/// (when `unknown` is allowed) one that is not registered.
fn target(entries: &[Entry], unknown: bool) -> BoxedStrategy<Option<String>> {
    let registered: Vec<String> = entries.iter().map(|e| e.version.clone()).collect();
    let pick = (any::<Index>(), 0usize..2).prop_map(move |(i, zeros)| {
        (!registered.is_empty()).then(|| {
            format!(
                "{}{}",
                "0".repeat(zeros),
                registered[i.index(registered.len())]
            )
        })
    });
    if unknown {
        let unregistered = (40u16..45).prop_map(|n| Some(n.to_string()));
        prop_oneof![2 => Just(None), 8 => pick, 1 => unregistered].boxed()
    } else {
        prop_oneof![1 => Just(None), 4 => pick].boxed()
    }
}

fn with_target(
    registry: impl Strategy<Value = Vec<Entry>>,
    unknown: bool,
) -> impl Strategy<Value = (Vec<Entry>, Option<String>)> {
    registry.prop_flat_map(move |entries| {
        let target = target(&entries, unknown);
        (Just(entries), target)
    })
}

/// `apply`'s answer (or a deploy's up phase, with `non_transactional` allowed) is the exact
/// route when nothing is in the way, and otherwise a refusal naming what is.
fn check_apply(
    entries: &[Entry],
    target: Option<&str>,
    allow_out_of_order: bool,
    non_transactional: bool,
    result: &Result<Vec<usize>, PlanError>,
) -> Result<(), TestCaseError> {
    if let Some(t) = target.filter(|t| !registered(entries, t)) {
        prop_assert_eq!(result, &Err(PlanError::UnknownTarget(t.to_string())));
        return Ok(());
    }
    let wanted = pending_up_to(entries, target);
    let in_route = |v: &str| position(entries, v).filter(|i| wanted.contains(i));
    let order = model_order(entries);
    let heads = model_heads(entries);
    match result {
        Ok(chosen) => {
            prop_assert_eq!(chosen, &wanted);
            // Several heads stop an apply without a target that has something to do.
            prop_assert!(target.is_some() || heads.is_empty() || chosen.is_empty());
            let mut done: Vec<&str> = entries
                .iter()
                .filter(|e| e.applied)
                .map(|e| e.version.as_str())
                .collect();
            for &i in chosen {
                let e = &entries[i];
                // Out of order: only a migration without requirements before the newest
                // applied one.
                if let (false, true, Some(newest)) = (
                    allow_out_of_order,
                    e.requires.is_empty(),
                    newest_applied(entries),
                ) {
                    let n = position(entries, newest).unwrap();
                    prop_assert!(pos(&order, i) > pos(&order, n));
                }
                prop_assert!(e.transactional || non_transactional);
                for r in &e.requires {
                    prop_assert!(done.iter().any(|d| same(d, r)), "{} needs {r}", e.version);
                }
                done.push(&e.version);
            }
        }
        Err(PlanError::OutOfOrder {
            version,
            newest_applied: newest,
        }) => {
            prop_assert!(!allow_out_of_order);
            let i = in_route(version).expect("refused migration is in the route");
            prop_assert!(entries[i].requires.is_empty());
            prop_assert_eq!(Some(newest.as_str()), newest_applied(entries));
            let n = position(entries, newest).unwrap();
            prop_assert!(pos(&order, i) < pos(&order, n));
        }
        Err(PlanError::MultipleHeads { heads: named }) => {
            prop_assert!(target.is_none() && !wanted.is_empty());
            let expected: Vec<String> = heads.iter().map(|&i| entries[i].version.clone()).collect();
            prop_assert_eq!(named, &expected);
        }
        Err(PlanError::NonTransactional { version }) => {
            prop_assert!(!non_transactional);
            let i = in_route(version).expect("refused migration is in the route");
            prop_assert!(!entries[i].transactional);
        }
        Err(PlanError::MissingRequirement { version, requires }) => {
            let i = in_route(version).expect("refused migration is in the route");
            prop_assert!(entries[i].requires.contains(requires));
            prop_assert!(!registered(entries, requires));
        }
        Err(PlanError::RequirementNotReady { version, requires }) => {
            let i = in_route(version).expect("refused migration is in the route");
            prop_assert!(entries[i].requires.contains(requires));
            prop_assert!(registered(entries, requires));
            let earlier = |j: usize| {
                entries[j].applied || (wanted.contains(&j) && pos(&order, j) < pos(&order, i))
            };
            prop_assert!(
                !(0..entries.len()).any(|j| same(&entries[j].version, requires) && earlier(j))
            );
        }
        Err(other) => prop_assert!(false, "apply refused with {other:?}"),
    }
    Ok(())
}

/// `rollback`'s answer (or a deploy's down phase) likewise.
fn check_rollback(
    entries: &[Entry],
    steps: Option<i64>,
    target: Option<&str>,
    non_transactional: bool,
    result: &Result<Vec<usize>, PlanError>,
) -> Result<(), TestCaseError> {
    if let Some(t) = target.filter(|t| !registered(entries, t)) {
        prop_assert_eq!(result, &Err(PlanError::UnknownTarget(t.to_string())));
        return Ok(());
    }
    let applied = applied_newest_first(entries);
    let wanted: Vec<usize> = match (steps, target) {
        (Some(n), _) if n as usize > applied.len() => {
            prop_assert_eq!(
                result,
                &Err(PlanError::TooManySteps {
                    requested: n,
                    applied: applied.len()
                })
            );
            return Ok(());
        }
        (Some(n), _) => applied[..n as usize].to_vec(),
        (None, Some(t)) => applied_after(entries, t),
        (None, None) => Vec::new(),
    };
    let leaving = |j: usize| wanted.contains(&j);
    let in_route = |v: &str| position(entries, v).filter(|&i| leaving(i));
    match result {
        Ok(chosen) => {
            prop_assert_eq!(chosen, &wanted);
            for &i in chosen {
                let e = &entries[i];
                prop_assert!(e.reversible && (e.transactional || non_transactional));
                for (j, d) in entries.iter().enumerate() {
                    if d.applied && !leaving(j) {
                        prop_assert!(!d.requires.iter().any(|r| same(r, &e.version)));
                    }
                }
            }
        }
        Err(PlanError::NonTransactional { version }) => {
            prop_assert!(!non_transactional);
            let i = in_route(version).expect("refused migration is in the route");
            prop_assert!(!entries[i].transactional);
        }
        Err(PlanError::Irreversible { version }) => {
            let i = in_route(version).expect("refused migration is in the route");
            prop_assert!(!entries[i].reversible);
        }
        Err(PlanError::StillRequired {
            version,
            required_by,
        }) => {
            prop_assert!(in_route(version).is_some());
            let j = position(entries, required_by).expect("a registered dependent");
            prop_assert!(entries[j].applied && !leaving(j));
            prop_assert!(entries[j].requires.iter().any(|r| same(r, version)));
        }
        Err(other) => prop_assert!(false, "rollback refused with {other:?}"),
    }
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(512)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn apply_runs_the_pending_versions_up_to_the_target_in_order(
        (entries, target) in with_target(clean_registry(12), false),
    ) {
        let target = target.as_deref();
        let chosen = route::apply(&entries, target, false);
        let pending = pending_up_to(&entries, target);
        let heads = model_heads(&entries);
        if target.is_none() && !heads.is_empty() && !pending.is_empty() {
            let heads = heads.iter().map(|&i| entries[i].version.clone()).collect();
            prop_assert_eq!(chosen, Err(PlanError::MultipleHeads { heads }));
            return Ok(());
        }
        prop_assert_eq!(&chosen, &Ok(pending));
        let mut after = entries.clone();
        for i in chosen.unwrap() {
            after[i].applied = true;
        }
        let wanted = wanted_by(&entries, target);
        for (i, (before, e)) in entries.iter().zip(&after).enumerate() {
            prop_assert_eq!(e.applied, before.applied || wanted[i]);
        }
    }

    #[test]
    fn rollback_undoes_the_applied_versions_above_the_target_newest_first(
        (entries, target) in with_target(clean_registry(12), false),
        steps in 0i64..14,
    ) {
        let target = target.as_deref();
        let expected = target.map(|t| applied_after(&entries, t)).unwrap_or_default();
        prop_assert_eq!(route::rollback(&entries, None, target), Ok(expected));
        let applied = applied_newest_first(&entries);
        let by_steps = route::rollback(&entries, Some(steps), None);
        if steps as usize <= applied.len() {
            prop_assert_eq!(by_steps, Ok(applied[..steps as usize].to_vec()));
        } else {
            prop_assert_eq!(by_steps, Err(PlanError::TooManySteps { requested: steps, applied: applied.len() }));
        }
    }

    #[test]
    fn apply_is_refused_exactly_when_something_is_in_the_way(
        (entries, target) in with_target(any_registry(10, 0.5), true),
        allow_out_of_order in any::<bool>(),
    ) {
        let target = target.as_deref();
        let result = route::apply(&entries, target, allow_out_of_order);
        check_apply(&entries, target, allow_out_of_order, false, &result)?;
    }

    #[test]
    fn rollback_is_refused_exactly_when_something_is_in_the_way(
        (entries, target) in with_target(any_registry(10, 0.5), true),
        steps in prop::option::of(0i64..12),
    ) {
        let target = target.as_deref();
        let result = route::rollback(&entries, steps, target);
        check_rollback(&entries, steps, target, false, &result)?;
    }

    /// Rolling back as many steps as an in-order apply took undoes the last applied ones in the
    /// order; in a history without requirements that is exactly that apply, newest first, as is
    /// rolling back to the newest migration applied before it. (With requirements, a migration
    /// applied by the apply may come before one applied earlier, which then goes first.)
    #[test]
    fn rolling_back_an_apply_returns_to_the_start(
        entries in any_registry(10, 0.9),
        pick in any::<Index>(),
    ) {
        // Only an apply that ran can be undone: the target is one that apply accepts.
        let ran = |target: &Option<&str>| {
            route::apply(&entries, *target, false).is_ok_and(|chosen| !chosen.is_empty())
        };
        let targets: Vec<Option<&str>> = std::iter::once(None)
            .chain(entries.iter().filter(|e| !e.applied).map(|e| Some(e.version.as_str())))
            .filter(ran)
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let target = targets[pick.index(targets.len())];
        let chosen = route::apply(&entries, target, false).unwrap();
        let mut after = entries.clone();
        for &i in &chosen {
            after[i].applied = true;
        }
        let back = route::rollback(&after, Some(chosen.len() as i64), None);
        check_rollback(&after, Some(chosen.len() as i64), None, false, &back)?;
        if let (Ok(undone), false) = (back, is_graph(&entries)) {
            prop_assert!(undone.iter().eq(chosen.iter().rev()));
            for &i in &undone {
                after[i].applied = false;
            }
            let start: Vec<bool> = entries.iter().map(|e| e.applied).collect();
            prop_assert_eq!(after.iter().map(|e| e.applied).collect::<Vec<_>>(), start);
            if let Some(newest) = newest_applied(&entries) {
                let mut applied = entries.clone();
                for &i in &chosen {
                    applied[i].applied = true;
                }
                prop_assert_eq!(route::rollback(&applied, None, Some(newest)), Ok(undone));
            }
        }
    }

    /// A deploy's route: the applied migrations that follow the target go down, the last in the
    /// order first, then the pending ones it needs go up in order, leaving the target and what
    /// it follows applied, what follows it pending and the rest as it was (in a history without
    /// requirements: exactly the versions up to the target applied). The down phase is checked whole before its first step and the up phase before
    /// its first; so a deploy that cannot finish refuses before any up step.
    #[test]
    fn deploy_goes_down_then_up_to_exactly_the_target(
        (entries, target) in with_target(any_registry(10, 0.5), true),
        allow_out_of_order in any::<bool>(),
    ) {
        let target = target.as_deref();
        let mut state = entries.clone();
        let mut taken = Vec::new();
        let outcome = loop {
            match route::deploy_next(&state, target, allow_out_of_order) {
                Ok(None) => break Ok(()),
                Ok(Some(step)) => {
                    let (Step::Up(i) | Step::Down(i)) = step;
                    state[i].applied = matches!(step, Step::Up(_));
                    taken.push(step);
                    prop_assert!(taken.len() <= entries.len(), "a migration moved twice");
                }
                Err(e) => break Err(e),
            }
        };
        let path = route::deploy_path(&entries, target, allow_out_of_order);
        match outcome {
            Ok(()) => {
                prop_assert_eq!(&path, &Ok(taken.clone()));
                let downs: Vec<usize> =
                    target.map(|t| applied_after(&entries, t)).unwrap_or_default();
                let ups = pending_up_to(&entries, target);
                let expected: Vec<Step> = downs
                    .into_iter()
                    .map(Step::Down)
                    .chain(ups.into_iter().map(Step::Up))
                    .collect();
                prop_assert_eq!(&taken, &expected);
                let wanted = wanted_by(&entries, target);
                let following = target
                    .and_then(|t| index_of(&entries, t))
                    .map(|t| dependents(&entries, t))
                    .unwrap_or_else(|| vec![false; entries.len()]);
                for (i, e) in state.iter().enumerate() {
                    let expected = wanted[i] || (entries[i].applied && !following[i]);
                    prop_assert_eq!(e.applied, expected || e.repeatable && entries[i].applied);
                    if !is_graph(&entries) && !e.repeatable {
                        prop_assert_eq!(e.applied, at_most(&e.version, target));
                    }
                }
            }
            Err(refusal) => {
                prop_assert_eq!(path.as_ref().err(), Some(&refusal));
                prop_assert!(taken.iter().all(|s| matches!(s, Step::Down(_))), "{taken:?} before {refusal:?}");
                let result = Err(refusal);
                let downs_left =
                    target.is_some_and(|t| registered(&state, t) && !applied_after(&state, t).is_empty());
                if downs_left {
                    check_rollback(&state, None, target, true, &result)?;
                } else {
                    check_apply(&state, target, allow_out_of_order, true, &result)?;
                }
            }
        }
    }

    #[test]
    fn baseline_marks_everything_up_to_the_target_on_a_fresh_registry(
        (entries, target) in with_target(any_registry(10, 0.5), true),
    ) {
        let Some(target) = target else { return Ok(()); };
        let result = route::baseline(&entries, &target);
        if !registered(&entries, &target) {
            prop_assert_eq!(result, Err(PlanError::UnknownTarget(target)));
        } else if let Some(newest) = newest_applied(&entries) {
            prop_assert_eq!(result, Err(PlanError::AlreadyApplied { version: newest.to_string() }));
        } else {
            let wanted = wanted_by(&entries, Some(&target));
            let expected: Vec<usize> = model_order(&entries)
                .into_iter()
                .filter(|&i| wanted[i])
                .collect();
            if !is_graph(&entries) {
                let by_version: Vec<usize> = (0..entries.len())
                    .filter(|&i| at_most(&entries[i].version, Some(&target)))
                    .collect();
                prop_assert_eq!(&expected, &by_version);
            }
            prop_assert_eq!(result, Ok(expected));
        }
    }

    /// A reported cycle is a real path of requirements from the new migration back to itself,
    /// and one is reported whenever the new migration can reach itself.
    #[test]
    fn cycles_are_real_and_none_is_missed(
        entries in any_registry(10, 0.5),
        start in (0u16..45).prop_map(|n| n.to_string()),
        requires in prop::collection::vec((0u16..45).prop_map(|n| n.to_string()), 0..=2),
    ) {
        let requirements_of = |v: &str| -> Vec<String> {
            if same(v, &start) {
                requires.clone()
            } else {
                entries
                    .iter()
                    .find(|e| same(&e.version, v))
                    .map(|e| e.requires.clone())
                    .unwrap_or_default()
            }
        };
        let mut reachable: Vec<String> = requires.clone();
        let mut seen = HashSet::new();
        while let Some(v) = reachable.pop() {
            if seen.insert(migrate_core::version::sort_key(&v)) {
                reachable.extend(requirements_of(&v));
            }
        }
        let cycle_exists = seen.contains(&migrate_core::version::sort_key(&start));
        match route::find_cycle(&entries, &start, &requires) {
            Some(path) => {
                prop_assert!(path.len() >= 2);
                prop_assert!(same(&path[0], &start) && same(path.last().unwrap(), &start));
                for pair in path.windows(2) {
                    prop_assert!(requirements_of(&pair[0]).iter().any(|r| same(r, &pair[1])));
                }
            }
            None => prop_assert!(!cycle_exists),
        }
    }

    /// The order is the model's: every requirement before the migration that needs it (but
    /// in a cycle), and among the migrations that are ready the first in version order. A
    /// history without requirements is in version order.
    #[test]
    fn the_order_puts_requirements_first_and_keeps_version_order_between_the_rest(
        entries in any_registry(12, 0.5),
    ) {
        let order = route::order(&entries);
        prop_assert_eq!(&order, &model_order(&entries));
        let cyclic = (0..entries.len()).any(|i| needed(&entries, i).iter().enumerate().any(|(j, &n)| n && j != i && needed(&entries, j)[i]));
        if !cyclic {
            for (p, &i) in order.iter().enumerate() {
                for r in requirements(&entries, i) {
                    prop_assert!(pos(&order, r) < p, "{} before {}", entries[r].version, entries[i].version);
                }
            }
        }
        let mut plain = entries.clone();
        for e in &mut plain {
            e.requires.clear();
        }
        let by_version: Vec<usize> = {
            let mut v: Vec<usize> = (0..plain.len()).collect();
            v.sort_by(|&a, &b| compare(&plain[a].version, &plain[b].version));
            v
        };
        prop_assert_eq!(route::order(&plain), by_version);
    }

    /// Without requirements every route is 0.1.0's: version order, targets cut it.
    #[test]
    fn a_history_without_requirements_routes_as_before(
        (entries, target) in with_target(any_registry(10, 0.5), true),
        allow_out_of_order in any::<bool>(),
        steps in prop::option::of(0i64..12),
    ) {
        let mut entries = entries;
        for e in &mut entries {
            e.requires.clear();
        }
        let target = target.as_deref();
        if target.is_some_and(|t| !registered(&entries, t)) {
            return Ok(());
        }
        let by_version = |keep: &dyn Fn(&Entry) -> bool| -> Vec<usize> {
            (0..entries.len()).filter(|&i| keep(&entries[i])).collect()
        };
        if let Ok(chosen) = route::apply(&entries, target, allow_out_of_order) {
            prop_assert_eq!(chosen, by_version(&|e| !e.applied && at_most(&e.version, target)));
        }
        if let (Ok(chosen), None) = (route::rollback(&entries, None, target), steps) {
            let mut expected = by_version(&|e| e.applied && target.is_some() && !at_most(&e.version, target));
            expected.reverse();
            prop_assert_eq!(chosen, expected);
        }
        if let Ok(path) = route::deploy_path(&entries, target, allow_out_of_order) {
            let mut state = entries.clone();
            for step in path {
                let (Step::Up(i) | Step::Down(i)) = step;
                state[i].applied = matches!(step, Step::Up(_));
            }
            for e in &state {
                prop_assert_eq!(e.applied, at_most(&e.version, target));
            }
        }
        let problems = route::problems(&entries);
        prop_assert!(problems.iter().all(|p| p.problem == "out_of_order"));
    }

    /// Alembic's shape: every migration but the first requires earlier ones, versions are
    /// random. validate() names exactly the heads; a deploy without a target refuses them;
    /// one with a head as target applies exactly that head's ancestors; a merge migration
    /// that requires every head lets the whole graph deploy, every requirement first.
    #[test]
    fn graphs_deploy_once_their_heads_are_merged(
        ids in prop::collection::btree_set(1000u32..0xffff_ffff, 2..10),
        parents in prop::collection::vec((any::<Index>(), any::<Index>(), any::<bool>()), 10),
        pick in any::<Index>(),
    ) {
        let ids: Vec<String> = ids.iter().map(|n| format!("{n:08x}")).collect();
        // Created in a random order: the versions say nothing about it.
        let mut entries: Vec<Entry> = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            let mut requires = Vec::new();
            if k > 0 {
                let (a, b, two) = parents[k];
                requires.push(ids[a.index(k)].clone());
                if two && ids[b.index(k)] != requires[0] {
                    requires.push(ids[b.index(k)].clone());
                }
            }
            entries.push(Entry {
                version: id.clone(),
                applied: false,
                transactional: true,
                reversible: true,
                requires,
                repeatable: false,
            });
        }
        let heads: Vec<String> = model_heads(&entries).iter().map(|&i| entries[i].version.clone()).collect();
        let reported: Vec<String> = route::problems(&entries)
            .into_iter()
            .filter(|p| p.problem == "multiple_heads")
            .map(|p| p.version)
            .collect();
        prop_assert_eq!(&reported, &heads);
        prop_assert!(route::problems(&entries).iter().all(|p| p.problem == "multiple_heads"));
        if !heads.is_empty() {
            prop_assert_eq!(route::deploy_path(&entries, None, false), Err(PlanError::MultipleHeads { heads: heads.clone() }));
            let head = &heads[pick.index(heads.len())];
            let path = route::deploy_path(&entries, Some(head), false).unwrap();
            let wanted = needed(&entries, index_of(&entries, head).unwrap());
            let ups: Vec<usize> = path.iter().map(|s| match s { Step::Up(i) => *i, Step::Down(_) => unreachable!() }).collect();
            let expected: Vec<usize> = model_order(&entries).into_iter().filter(|&i| wanted[i]).collect();
            prop_assert_eq!(ups, expected);
            entries.push(Entry {
                version: "ffffffff0".into(),
                applied: false,
                transactional: true,
                reversible: true,
                requires: heads.clone(),
                repeatable: false,
            });
        }
        prop_assert!(route::problems(&entries).is_empty());
        let path = route::deploy_path(&entries, None, false).unwrap();
        prop_assert_eq!(path.len(), entries.len());
        let mut done: Vec<&str> = Vec::new();
        for step in &path {
            let Step::Up(i) = *step else { unreachable!() };
            for r in &entries[i].requires {
                prop_assert!(done.contains(&r.as_str()));
            }
            done.push(&entries[i].version);
        }
    }
}
