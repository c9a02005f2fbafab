//! `vmdbg test --partition`: one shard of a suite, chosen exactly as
//! cargo-nextest's `--partition` chooses it, so a CI matrix shards a VM
//! suite the way it shards a host suite (and a test lands in the same
//! shard under both).
//!
//! nextest's rules (0.9 series, its `partition.rs` and `test_list.rs`),
//! restated:
//! - `count:M/N`: round-robin over the binary's tests in name order,
//!   the first to shard 1; `hash:M/N`: shard `xxh64(name, seed 0) % N + 1`;
//!   `slice:M/N` deals round-robin across binaries, which for one binary
//!   is `count`.
//! - Only tests the filters selected are counted (a test filtered out by
//!   name takes no turn).
//! - Ignored tests are dealt out on their own, by a second partitioner of
//!   the same kind, so `--ignored` and `--include-ignored` shard them as
//!   nextest's `--run-ignored` does. An ignored test that does not run is
//!   dealt out the same way and reported as ignored only in its shard: the
//!   shards' reports add up to the whole suite's.

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use xxhash_rust::xxh64::xxh64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    Count { shard: u64, total: u64 },
    Hash { shard: u64, total: u64 },
}

impl FromStr for Partition {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let (kind, shards) = s.split_once(':').with_context(|| {
            format!("--partition {s:?}: give count:M/N or hash:M/N (shard M of N, from 1)")
        })?;
        let (shard, total) = shards
            .split_once('/')
            .with_context(|| format!("--partition {s:?}: the shards are M/N, e.g. {kind}:1/3"))?;
        let number = |what: &str, text: &str| -> Result<u64> {
            text.parse()
                .with_context(|| format!("--partition {s:?}: {what} {text:?} is not a number"))
        };
        let (shard, total) = (
            number("the shard", shard)?,
            number("the shard count", total)?,
        );
        if !(1..=total).contains(&shard) {
            bail!(
                "--partition {s:?}: the shard must be between 1 and {total}, the number of shards"
            );
        }
        match kind {
            // nextest's `slice` deals across all binaries; for the one
            // binary a `vmdbg test` runs it is `count`.
            "count" | "slice" => Ok(Partition::Count { shard, total }),
            "hash" => Ok(Partition::Hash { shard, total }),
            other => bail!(
                "--partition {s:?}: `{other}` is not a partition kind; use count:M/N, hash:M/N or slice:M/N (nextest's)"
            ),
        }
    }
}

/// One listed test: its name and whether it is an ignored test.
pub struct Listed<'a> {
    pub name: &'a str,
    pub ignored: bool,
}

impl Partition {
    /// Of `tests` (the selected tests, any order), which are in this shard.
    pub fn keeps(&self, tests: &[Listed]) -> Vec<bool> {
        let mut keep = vec![false; tests.len()];
        for ignored in [false, true] {
            let mut group: Vec<usize> = (0..tests.len())
                .filter(|&i| tests[i].ignored == ignored)
                .collect();
            group.sort_by(|&a, &b| tests[a].name.cmp(tests[b].name));
            for (turn, &i) in group.iter().enumerate() {
                keep[i] = self.in_shard(turn as u64, tests[i].name);
            }
        }
        keep
    }

    fn in_shard(&self, turn: u64, name: &str) -> bool {
        match *self {
            Partition::Count { shard, total } => turn % total == shard - 1,
            // Fixed for nextest's whole 0.9 series.
            Partition::Hash { shard, total } => xxh64(name.as_bytes(), 0) % total == shard - 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed<'a>(names: &[&'a str]) -> Vec<Listed<'a>> {
        names
            .iter()
            .map(|name| Listed {
                name,
                ignored: name.starts_with("ig_"),
            })
            .collect()
    }

    fn shard(p: &str, names: &[&'static str]) -> Vec<&'static str> {
        let tests = listed(names);
        let keep = p.parse::<Partition>().unwrap().keeps(&tests);
        names
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(n, _)| *n)
            .collect()
    }

    #[test]
    fn count_deals_in_name_order_and_ignored_tests_apart() {
        // nextest's own example: alpha, beta, delta, gamma sorted; shard 1
        // of 2 takes alpha and delta; ignored tests get their own turns.
        let names = [
            "gamma", "alpha", "ig_two", "delta", "beta", "ig_one", "ig_three",
        ];
        assert_eq!(
            shard("count:1/2", &names),
            ["alpha", "ig_two", "delta", "ig_one"]
        );
        assert_eq!(shard("count:2/2", &names), ["gamma", "beta", "ig_three"]);
    }

    #[test]
    fn shards_are_disjoint_and_cover_the_suite() {
        let names: Vec<&'static str> = (0..40)
            .map(|i| &*Box::leak(format!("tests::case_{i}").into_boxed_str()))
            .collect();
        for kind in ["count", "hash"] {
            let mut all: Vec<&str> = (1..=3)
                .flat_map(|m| shard(&format!("{kind}:{m}/3"), &names))
                .collect();
            all.sort();
            let mut want = names.clone();
            want.sort();
            assert_eq!(all, want, "{kind}");
        }
    }

    #[test]
    fn bad_partitions_say_what_to_give() {
        for (bad, says) in [
            ("3/4", "give count:M/N or hash:M/N"),
            ("count:3", "the shards are M/N"),
            ("count:0/2", "between 1 and 2"),
            ("hash:3/2", "between 1 and 2"),
            ("hash:x/2", "the shard \"x\" is not a number"),
            ("shuffle:1/2", "`shuffle` is not a partition kind"),
        ] {
            let e = bad.parse::<Partition>().unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
