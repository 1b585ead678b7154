//! Properties of the natural version order: `compare` is a total order consistent with equal
//! spellings (`001` = `1`), `sort_key` orders bytewise exactly like it, and sorting does not
//! depend on the input order. Versions have no parser or display form to round-trip: the
//! text is kept as written and `sort_key` is one-way.

use std::cmp::Ordering;

use migrate_core::version::{check, compare, sort_key};
use proptest::prelude::*;

/// Versions from a small alphabet, so digit runs, leading zeros, shared prefixes and equal
/// spellings all come up often.
fn version() -> impl Strategy<Value = String> {
    "[0-9a-cA._-]{0,7}[0-9a-c]"
}

/// `v` with `zeros[i]` extra leading zeros in front of its i-th digit run: the same version.
fn with_leading_zeros(v: &str, zeros: &[usize]) -> String {
    let mut out = String::new();
    let mut run = 0;
    let mut previous_was_digit = false;
    for c in v.chars() {
        let digit = c.is_ascii_digit();
        if digit && !previous_was_digit {
            out.push_str(&"0".repeat(zeros.get(run).copied().unwrap_or(0)));
            run += 1;
        }
        previous_was_digit = digit;
        out.push(c);
    }
    out
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(512)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_versions_are_valid(v in version()) {
        prop_assert_eq!(check(&v), Ok(()));
    }

    #[test]
    fn reflexive_and_antisymmetric(a in version(), b in version()) {
        prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
    }

    #[test]
    fn transitive(a in version(), b in version(), c in version()) {
        for (x, y, z) in [(&a, &b, &c), (&a, &c, &b), (&b, &a, &c), (&b, &c, &a), (&c, &a, &b), (&c, &b, &a)] {
            let (xy, yz, xz) = (compare(x, y), compare(y, z), compare(x, z));
            if xy.is_le() && yz.is_le() {
                // Equal only if both steps are equal, less if either is less.
                prop_assert_eq!(xz, xy.then(yz));
            }
        }
    }

    /// Byte strings are totally ordered, so agreeing with them makes `compare` a total order,
    /// and equal versions are exactly those that share a key (what the registry keeps unique).
    #[test]
    fn sort_key_orders_like_compare(a in version(), b in version()) {
        prop_assert_eq!(sort_key(&a).cmp(&sort_key(&b)), compare(&a, &b));
    }

    #[test]
    fn leading_zeros_spell_the_same_version(
        a in version(),
        b in version(),
        zeros in prop::collection::vec(0usize..3, 0..4),
    ) {
        let padded = with_leading_zeros(&a, &zeros);
        prop_assert_eq!(compare(&padded, &a), Ordering::Equal);
        prop_assert_eq!(sort_key(&padded), sort_key(&a));
        // Equal spellings are interchangeable against any other version.
        prop_assert_eq!(compare(&padded, &b), compare(&a, &b));
    }

    #[test]
    fn numbers_order_by_value(
        x in any::<u64>(),
        y in any::<u64>(),
        prefix in "[a-c._-]{0,3}",
        suffix in "[a-c._-]{0,3}",
    ) {
        prop_assert_eq!(
            compare(&format!("{prefix}{x}{suffix}"), &format!("{prefix}{y}{suffix}")),
            x.cmp(&y)
        );
    }

    #[test]
    fn sorting_does_not_depend_on_input_order(
        (versions, shuffled) in prop::collection::vec(version(), 0..12)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
    ) {
        let sorted_keys = |mut v: Vec<String>| {
            v.sort_by(|a, b| compare(a, b));
            v.iter().map(|s| sort_key(s)).collect::<Vec<_>>()
        };
        let keys = sorted_keys(versions);
        prop_assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        prop_assert_eq!(keys, sorted_keys(shuffled));
    }
}
