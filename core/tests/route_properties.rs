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

fn at_most(v: &str, target: Option<&str>) -> bool {
    target.is_none_or(|t| compare(v, t) != Ordering::Greater)
}

fn registered(entries: &[Entry], v: &str) -> bool {
    entries.iter().any(|e| same(&e.version, v))
}

fn position(entries: &[Entry], v: &str) -> Option<usize> {
    entries.iter().position(|e| e.version == v)
}

fn newest_applied(entries: &[Entry]) -> Option<&str> {
    entries
        .iter()
        .rev()
        .find(|e| e.applied)
        .map(|e| e.version.as_str())
}

/// Pending migrations up to the target, in version order.
fn pending_up_to(entries: &[Entry], target: Option<&str>) -> Vec<usize> {
    (0..entries.len())
        .filter(|&i| !entries[i].applied && at_most(&entries[i].version, target))
        .collect()
}

fn applied_newest_first(entries: &[Entry]) -> Vec<usize> {
    (0..entries.len())
        .rev()
        .filter(|&i| entries[i].applied)
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
    match result {
        Ok(chosen) => {
            prop_assert_eq!(chosen, &wanted);
            let mut done: Vec<&str> = entries
                .iter()
                .filter(|e| e.applied)
                .map(|e| e.version.as_str())
                .collect();
            for &i in chosen {
                let e = &entries[i];
                if let (false, Some(newest)) = (allow_out_of_order, newest_applied(entries)) {
                    prop_assert!(compare(&e.version, newest).is_gt());
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
            prop_assert!(in_route(version).is_some());
            prop_assert_eq!(Some(newest.as_str()), newest_applied(entries));
            prop_assert!(compare(version, newest).is_lt());
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
            let earlier = |j: usize| entries[j].applied || (wanted.contains(&j) && j < i);
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
        (None, Some(t)) => applied
            .into_iter()
            .filter(|&i| compare(&entries[i].version, t).is_gt())
            .collect(),
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
        prop_assert_eq!(&chosen, &Ok(pending_up_to(&entries, target)));
        let mut after = entries.clone();
        for i in chosen.unwrap() {
            after[i].applied = true;
        }
        for (before, e) in entries.iter().zip(&after) {
            prop_assert_eq!(e.applied, before.applied || at_most(&e.version, target));
        }
    }

    #[test]
    fn rollback_undoes_the_applied_versions_above_the_target_newest_first(
        (entries, target) in with_target(clean_registry(12), false),
        steps in 0i64..14,
    ) {
        let target = target.as_deref();
        let above: Vec<usize> = applied_newest_first(&entries)
            .into_iter()
            .filter(|&i| !at_most(&entries[i].version, target))
            .collect();
        let expected = if target.is_some() { above } else { Vec::new() };
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

    /// Rolling back as many steps as an in-order apply took undoes exactly that apply, newest
    /// first, as does rolling back to the newest migration applied before it.
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
        if let Ok(undone) = back {
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

    /// A deploy's route: the applied migrations above the target go down newest first, then the
    /// pending ones up to it go up in order, leaving exactly the versions up to the target
    /// applied. The down phase is checked whole before its first step and the up phase before
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
                let downs: Vec<usize> = match target {
                    Some(_) => applied_newest_first(&entries)
                        .into_iter()
                        .filter(|&i| !at_most(&entries[i].version, target))
                        .collect(),
                    None => Vec::new(),
                };
                let ups = pending_up_to(&entries, target);
                let expected: Vec<Step> = downs
                    .into_iter()
                    .map(Step::Down)
                    .chain(ups.into_iter().map(Step::Up))
                    .collect();
                prop_assert_eq!(&taken, &expected);
                for e in &state {
                    prop_assert_eq!(e.applied, at_most(&e.version, target));
                }
            }
            Err(refusal) => {
                prop_assert_eq!(path.as_ref().err(), Some(&refusal));
                prop_assert!(taken.iter().all(|s| matches!(s, Step::Down(_))), "{taken:?} before {refusal:?}");
                let result = Err(refusal);
                let downs_left = target.is_some()
                    && state.iter().any(|e| e.applied && !at_most(&e.version, target));
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
            let expected: Vec<usize> = (0..entries.len())
                .filter(|&i| at_most(&entries[i].version, Some(&target)))
                .collect();
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
}
