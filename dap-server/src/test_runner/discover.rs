//! Which test framework a binary uses, how it lists its tests, and the
//! command line that runs exactly one of them: Rust's libtest and
//! GoogleTest, with their own filter and `--ignored` rules left to the
//! binary itself (it is asked for its list with the user's arguments).

use std::path::Path;

use anyhow::{bail, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    Libtest,
    GoogleTest,
}

impl Framework {
    /// GoogleTest binaries carry their flag names; anything else is taken
    /// for a Rust test harness.
    pub fn of(binary: &Path) -> Result<Self> {
        let bytes = std::fs::read(binary).map_err(|e| {
            anyhow::anyhow!("cannot read the test binary {}: {e}", binary.display())
        })?;
        if !bytes.starts_with(b"\x7fELF") {
            bail!("{} is not an ELF executable; give a test binary (cargo test --no-run prints their paths)", binary.display());
        }
        let needle = b"gtest_list_tests";
        Ok(if bytes.windows(needle.len()).any(|w| w == needle) {
            Framework::GoogleTest
        } else {
            Framework::Libtest
        })
    }

    /// The arguments that list the tests the user's `args` select.
    pub fn list_args(self, args: &UserArgs, ignored_only: bool) -> Vec<String> {
        match self {
            Framework::Libtest => {
                let mut a = vec!["--list".to_string(), "--format".into(), "terse".into()];
                if ignored_only {
                    a.push("--ignored".into());
                }
                if args.exact {
                    a.push("--exact".into());
                }
                a.extend(args.filters.iter().cloned());
                a.extend(
                    args.skips
                        .iter()
                        .flat_map(|s| ["--skip".to_string(), s.clone()]),
                );
                a
            }
            Framework::GoogleTest => {
                let mut a = vec!["--gtest_list_tests".to_string()];
                a.extend(args.passthrough.iter().cloned());
                a
            }
        }
    }

    /// The names in a listing.
    pub fn parse_list(self, listing: &str) -> Vec<String> {
        match self {
            // `name: test` per line; benchmarks (`: bench`) are not run.
            Framework::Libtest => listing
                .lines()
                .filter_map(|l| l.strip_suffix(": test"))
                .map(str::to_string)
                .collect(),
            // `Suite.` then indented `Test` lines (a `  # GetParam()` note may follow).
            Framework::GoogleTest => {
                let mut suite = String::new();
                let mut names = Vec::new();
                for line in listing.lines() {
                    if let Some(test) = line.strip_prefix("  ") {
                        let test = test.split("  #").next().unwrap_or(test).trim();
                        if !test.is_empty() && !suite.is_empty() {
                            names.push(format!("{suite}{test}"));
                        }
                    } else if line.ends_with('.') && !line.contains(' ') {
                        suite = line.to_string();
                    }
                }
                names
            }
        }
    }

    /// The arguments that run the one test `name` (ignored ones included:
    /// the runner decided to run it).
    pub fn run_args(self, name: &str) -> Vec<String> {
        match self {
            Framework::Libtest => vec![
                name.into(),
                "--exact".into(),
                "--include-ignored".into(),
                "--nocapture".into(),
                "--test-threads".into(),
                "1".into(),
            ],
            Framework::GoogleTest => vec![
                format!("--gtest_filter={name}"),
                "--gtest_also_run_disabled_tests".into(),
            ],
        }
    }
}

/// What the user passed after the test binary, as libtest reads it (the
/// arguments cargo forwards: `cargo test NAME -- --exact --ignored` …).
#[derive(Clone, Debug, Default)]
pub struct UserArgs {
    pub filters: Vec<String>,
    pub skips: Vec<String>,
    pub exact: bool,
    pub ignored: bool,
    pub include_ignored: bool,
    /// Everything, for frameworks that read their own flags.
    pub passthrough: Vec<String>,
}

impl UserArgs {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut out = UserArgs {
            passthrough: args.to_vec(),
            ..Default::default()
        };
        let mut i = 0;
        while i < args.len() {
            let a = args[i].as_str();
            match a {
                "--exact" => out.exact = true,
                "--ignored" => out.ignored = true,
                "--include-ignored" => out.include_ignored = true,
                "--skip" => {
                    i += 1;
                    let Some(s) = args.get(i) else { bail!("--skip needs a filter") };
                    out.skips.push(s.clone());
                }
                // Flags that only shape libtest's own output or threads:
                // vmdbg runs one test per restored VM and reports itself.
                "--nocapture" | "--show-output" | "-q" | "--quiet" | "--color" | "--test-threads" | "--format" | "-Z" => {
                    if matches!(a, "--color" | "--test-threads" | "--format" | "-Z") {
                        i += 1;
                    }
                }
                _ if a.starts_with("--test-threads=") || a.starts_with("--color=") || a.starts_with("--format=") => {}
                _ if a.starts_with("--gtest_") => {}
                _ if a.starts_with('-') => bail!("vmdbg test does not know the test-harness option {a:?} (it takes filters, --exact, --skip, --ignored and --include-ignored)"),
                _ => out.filters.push(a.to_string()),
            }
            i += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_listing() {
        let names = Framework::Libtest.parse_list("a::one: test\nb: bench\nc::two: test\n");
        assert_eq!(names, ["a::one", "c::two"]);
    }

    #[test]
    fn googletest_listing() {
        let listing = "Running main() from gtest_main.cc\nMath.\n  Adds\n  Subtracts\nParam/Suite.\n  Case/0  # GetParam() = 1\n";
        assert_eq!(
            Framework::GoogleTest.parse_list(listing),
            ["Math.Adds", "Math.Subtracts", "Param/Suite.Case/0"]
        );
    }

    #[test]
    fn cargo_forwarded_arguments() {
        let args: Vec<String> = [
            "marker",
            "--exact",
            "--skip",
            "slow",
            "--test-threads=2",
            "--include-ignored",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let parsed = UserArgs::parse(&args).unwrap();
        assert_eq!(parsed.filters, ["marker"]);
        assert_eq!(parsed.skips, ["slow"]);
        assert!(parsed.exact && parsed.include_ignored && !parsed.ignored);
        assert!(UserArgs::parse(&["--bogus".to_string()]).is_err());
    }
}
