//! `vmdbg test` (issue 12) on the QEMU engine: the `isolation` crate's
//! tests (tests/guests/isolation) each start from the set-up snapshot —
//! the marker tests fail if any earlier test's marker survived, and
//! `needs_a_shell` runs after `breaks_the_shell` removed /bin/sh — with
//! libtest's report and status, the JUnit XML report, and the same
//! results through plain `cargo test` with vmdbg as the cargo runner.
//! Without a restore between tests, the same binary fails: shown by
//! running it in one `vmdbg run`. A GoogleTest binary (Debian's
//! libgtest-dev) and a generic command list (`--each`) pass the same
//! isolation check; `--jobs 2` from the cached set-up state gives the same
//! results as `--jobs 1`, and `cargo test NAME` restores that state
//! instead of booting. JUnit reports are validated against
//! tests/junit.xsd (Jenkins' JUnit schema) by xmllint.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmdbg_e2e::*;

const LIMIT: Duration = Duration::from_secs(400);

fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/isolation")
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/isolation")
}

/// Builds the isolation crate's test binary; returns its path.
fn test_binary() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--manifest-path",
        ])
        .arg(crate_dir().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo test --no-run: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter_map(cargo_test_executable)
        .next()
        .expect("cargo named the test binary")
}

/// `"executable":"…"` of a compiler-artifact message (no JSON crate here).
fn cargo_test_executable(line: &str) -> Option<PathBuf> {
    if !line.contains("\"reason\":\"compiler-artifact\"") || !line.contains("\"test\":true") {
        return None;
    }
    let rest = line.split("\"executable\":\"").nth(1)?;
    Some(PathBuf::from(rest.split('"').next()?))
}

const SETUP: &str = "echo set up > /root/from-setup";

fn assert_isolated_results(stdout: &str, stderr: &str) {
    for name in [
        "marker_one",
        "marker_two",
        "marker_three",
        "breaks_the_shell",
        "needs_a_shell",
        "sees_the_setup",
    ] {
        assert!(
            stdout.contains(&format!("test tests::{name} ... ok\n")),
            "{name} passed:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("test tests::deliberately_fails ... FAILED\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("test tests::ignored_by_default ... ignored\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deliberately wrong arithmetic"),
        "the failure's message is printed:\n{stdout}"
    );
    assert!(
        stdout.contains(
            "test result: FAILED. 6 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out;"
        ),
        "libtest's summary:\n{stdout}"
    );
}

#[test]
fn each_test_starts_from_the_setup_snapshot_with_junit_xml() {
    if !linux_guest_ready("vmdbg_test_isolation", &["cargo", "xmllint"]) {
        return;
    }
    let binary = test_binary();
    let dir = scratch_dir("vmdbg-test");
    let junit = dir.join("report.xml");
    let mut cmd = vmdbg();
    cmd.args(["test", "--engine", "qemu", "--setup", SETUP, "--junit"])
        .arg(&junit)
        .arg("--")
        .arg(&binary);
    let out = run(cmd, "vmdbg test", LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(101),
        "libtest's status for a failure:\n{stdout}\n{stderr}"
    );
    assert_isolated_results(&stdout, &stderr);

    let xml = std::fs::read_to_string(&junit).expect("the JUnit report was written");
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"8\" failures=\"1\" errors=\"0\" time=\""), "{xml}");
    assert!(
        xml.contains("<testsuite name=\"")
            && xml.contains("tests=\"8\" failures=\"1\" errors=\"0\" skipped=\"1\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), 8, "{xml}");
    assert_eq!(xml.matches("<skipped/>").count(), 1, "{xml}");
    let failure = xml
        .split("<failure message=\"")
        .nth(1)
        .expect("one failure");
    assert!(
        failure.starts_with("thread &apos;tests::deliberately_fails&apos;")
            && failure.contains("deliberately wrong arithmetic"),
        "the failure message is the panic: {failure}"
    );
    // Valid JUnit XML as Jenkins reads it; the schema does refuse a report
    // that strays from it.
    junit_valid(&junit).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let stray = dir.join("stray.xml");
    std::fs::write(
        &stray,
        xml.replacen("<testsuites ", "<testsuites skipped=\"1\" ", 1),
    )
    .unwrap();
    assert!(
        junit_valid(&stray).is_err(),
        "tests/junit.xsd refuses an attribute Jenkins does not know"
    );

    // A filter selects as libtest does; filtered-out tests are counted.
    let mut cmd = vmdbg();
    cmd.args(["test", "--engine", "qemu", "--"])
        .arg(&binary)
        .args(["marker", "--include-ignored"]);
    let out = run(cmd, "vmdbg test marker", LIMIT);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains(
            "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 5 filtered out;"
        ),
        "{stdout}"
    );
}

#[test]
fn cargo_test_with_vmdbg_as_the_runner() {
    if !linux_guest_ready("vmdbg_test_cargo_runner", &["cargo"]) {
        return;
    }
    test_binary(); // built once, so cargo below only runs it
                   // As README shows it for .cargo/config.toml, given on the command line.
    let runner = format!(
        "target.x86_64-unknown-linux-gnu.runner = [{:?}, \"test\", \"--engine\", \"qemu\", \"--setup\", {SETUP:?}, \"--\"]",
        vmdbg_binary().display().to_string()
    );
    let out = run(
        {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["test", "--config", &runner, "--manifest-path"])
                .arg(crate_dir().join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", target_dir())
                .env("XDG_CACHE_HOME", test_cache_home());
            cmd
        },
        "cargo test with the vmdbg runner",
        LIMIT,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(101),
        "cargo test fails as the failing test says:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("vmdbg: set-up snapshot taken"),
        "the tests ran through vmdbg:\n{stderr}"
    );
    assert_isolated_results(&stdout, &stderr);

    // `cargo test NAME`: one test, from the set-up state the run above
    // saved (or found) instead of a boot.
    let out = run(
        {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["test", "--config", &runner, "--manifest-path"])
                .arg(crate_dir().join("Cargo.toml"))
                .args(["tests::marker_two", "--", "--exact"])
                .env("CARGO_TARGET_DIR", target_dir())
                .env("XDG_CACHE_HOME", test_cache_home());
            cmd
        },
        "cargo test marker_two with the vmdbg runner",
        LIMIT,
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("vmdbg: started from the cached set-up state"),
        "restored, not booted:\n{stderr}"
    );
    assert!(
        stdout.contains("test tests::marker_two ... ok\n")
            && stdout.contains(
                "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 7 filtered out;"
            ),
        "{stdout}"
    );
}

/// The verdict lines of libtest's report, sorted (tests side by side end
/// in any order).
fn verdicts(stdout: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test tests::"))
        .collect();
    lines.sort_unstable();
    lines
}

#[test]
fn jobs_2_from_the_cached_setup_state_gives_the_same_results_as_jobs_1() {
    if !linux_guest_ready("vmdbg_test_jobs", &["cargo"]) {
        return;
    }
    let binary = test_binary();
    let vmdbg_test = |options: &[&str], what: &str| {
        let mut cmd = vmdbg();
        cmd.args(["test", "--engine", "qemu", "--setup", SETUP])
            .args(options)
            .arg("--")
            .arg(&binary);
        let out = run(cmd, what, LIMIT);
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    // Booted and set up, whatever the cache holds; the state is saved.
    let (status, one, one_err) = vmdbg_test(&["--fresh"], "vmdbg test --fresh");
    assert_eq!(status, Some(101), "{one}\n{one_err}");
    assert!(
        one_err.contains("vmdbg: saved the set-up VM for the next runs as"),
        "{one_err}"
    );
    assert_isolated_results(&one, &one_err);

    // Two VMs, both started from that saved state, each restored to its
    // set-up snapshot before each of its tests.
    let (status, two, two_err) = vmdbg_test(&["--jobs", "2"], "vmdbg test --jobs 2");
    assert_eq!(status, Some(101), "{two}\n{two_err}");
    assert_eq!(
        two_err
            .matches("vmdbg: started from the cached set-up state")
            .count(),
        2,
        "no boot, no setup: {two_err}"
    );
    assert!(!two_err.contains("booting the test VM"), "{two_err}");
    assert_eq!(
        two_err.matches("set-up snapshot taken").count(),
        2,
        "{two_err}"
    );
    assert_isolated_results(&two, &two_err);
    assert_eq!(verdicts(&one), verdicts(&two));

    // --list lists in the guest (from the cached state) and runs nothing.
    let (status, listed, list_err) =
        vmdbg_test(&["--list", "--format", "json"], "vmdbg test --list");
    assert_eq!(status, Some(0), "{listed}\n{list_err}");
    assert_eq!(listed.lines().count(), 8, "{listed}");
    assert!(
        listed.contains(
            r#"{"event":"listed","ignored":true,"name":"tests::ignored_by_default","type":"test"}"#
        ),
        "{listed}"
    );
    assert!(!list_err.contains("set-up snapshot taken"), "{list_err}");
}

#[test]
fn each_command_of_a_list_starts_from_the_snapshot() {
    if !linux_guest_ready("vmdbg_test_each", &["xmllint"]) {
        return;
    }
    let dir = scratch_dir("vmdbg-test-each");
    let names = dir.join("names.txt");
    std::fs::write(
        &names,
        "first\nsecond\n# not a test\n\nthird\nit's quoted\n",
    )
    .unwrap();
    let junit = dir.join("each.xml");
    // Each test fails if an earlier test's marker survived, leaves its own,
    // and removes the /bin/sh that runs the next test's command.
    let mut cmd = vmdbg();
    cmd.args(["test", "--engine", "qemu", "--each"])
        .arg("test ! -e /root/marker && echo {} > /root/marker && rm /bin/sh")
        .arg("--list-from")
        .arg(&names)
        .arg("--junit")
        .arg(&junit);
    let out = run(cmd, "vmdbg test --each", LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for name in ["first", "second", "third", "it's quoted"] {
        assert!(
            stdout.contains(&format!("test {name} ... ok\n")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(
            "test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out;"
        ),
        "{stdout}"
    );
    junit_valid(&junit).unwrap_or_else(|e| panic!("{e}"));

    // The names from a command in the guest; a failing command fails its test.
    let mut cmd = vmdbg();
    cmd.args(["test", "--engine", "qemu", "--each"])
        .arg("test ! -e /root/marker && touch /root/marker && test {} != 2")
        .args(["--list-from", "seq 1 3"]);
    let out = run(cmd, "vmdbg test --each --list-from CMD", LIMIT);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(101), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("test 1 ... ok\ntest 2 ... FAILED\ntest 3 ... ok\n")
            && stdout.contains("(exit status 1)")
            && stdout.contains("test result: FAILED. 2 passed; 1 failed;"),
        "{stdout}"
    );
}

/// The guest's clock stands still in a reset point: each test must read
/// the host's time, not the moment of the set-up snapshot. Each test
/// sleeps 2 s and prints the guest's date, so with the clock set after
/// each restore every date is at least a second past the one before it
/// and within the host's window; without, they would all be the same.
#[test]
fn the_guest_clock_follows_the_hosts_after_each_restore() {
    if !linux_guest_ready("vmdbg_test_clock", &[]) {
        return;
    }
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = now();
    let mut cmd = vmdbg();
    cmd.args(["test", "--engine", "qemu", "--format", "json", "--each"])
        .arg("sleep 2; date +%s # test {}")
        .args(["--list-from", "seq 1 4"]);
    let out = run(cmd, "vmdbg test --each 'sleep 2; date +%s'", LIMIT);
    let after = now();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let dates: Vec<u64> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["type"] == "test" && e["event"] == "ok")
        .map(|e| {
            e["stdout"]
                .as_str()
                .and_then(|o| o.trim().parse().ok())
                .unwrap_or_else(|| panic!("a test printed no date: {e}"))
        })
        .collect();
    assert_eq!(dates.len(), 4, "{stdout}\n{stderr}");
    for (i, pair) in dates.windows(2).enumerate() {
        assert!(
            pair[1] > pair[0],
            "test {} read {} after test {} read {}: the clock stood still across the restore ({dates:?})\n{stderr}",
            i + 2,
            pair[1],
            i + 1,
            pair[0]
        );
    }
    for date in &dates {
        assert!(
            (before..=after).contains(date),
            "guest date {date} outside the host's window {before}..={after} ({dates:?})"
        );
    }
}

#[test]
fn without_a_restore_between_them_the_same_tests_collide() {
    if !linux_guest_ready("vmdbg_test_without_restore", &["cargo"]) {
        return;
    }
    let binary = test_binary();
    let mut cmd = vmdbg_run(&["--engine", "qemu", "--copy"]);
    cmd.arg(format!("{}:/root/isolation", binary.display()))
        .args(["--", "/root/isolation", "--test-threads", "1", "marker"]);
    let out = run(cmd, "vmdbg run isolation", LIMIT);
    let stdout = text(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("the marker of an earlier test is here"),
        "{stdout}"
    );
}

/// Validates a report against tests/junit.xsd (Jenkins' JUnit schema)
/// with libxml2's xmllint.
fn junit_valid(report: &Path) -> Result<(), String> {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("junit.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(report)
        .output()
        .map_err(|e| format!("xmllint: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "xmllint --schema {}: {}",
            schema.display(),
            text(&out.stderr)
        ))
    }
}

#[test]
fn googletest_binary_each_test_from_the_snapshot() {
    if !linux_guest_ready("vmdbg_test_googletest", &["g++"]) {
        return;
    }
    let gtest = Path::new("/usr/lib/x86_64-linux-gnu/libgtest_main.a")
        .exists()
        .then_some(())
        .ok_or_else(|| "GoogleTest is not installed (apt-get install libgtest-dev)".to_string());
    if !require(gtest, "vmdbg_test_googletest") {
        return;
    }
    let dir = scratch_dir("vmdbg-test-gtest");
    let binary = dir.join("isolation_gtest");
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("guests/isolation-gtest/isolation_test.cpp");
    let built = Command::new("g++")
        .args(["-O0", "-g", "-o"])
        .arg(&binary)
        .arg(&source)
        .args(["-lgtest", "-lgtest_main", "-pthread"])
        .output()
        .expect("run g++");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let mut cmd = vmdbg();
    cmd.args(["test", "--engine", "qemu", "--"]).arg(&binary);
    let out = run(cmd, "vmdbg test isolation_gtest", LIMIT);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(101),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    for name in ["MarkerOne", "MarkerTwo", "BreaksTheShell", "NeedsAShell"] {
        assert!(
            stdout.contains(&format!("test Isolation.{name} ... ok\n")),
            "{name}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("test Isolation.DeliberatelyFails ... FAILED\n"),
        "{stdout}"
    );
    assert!(stdout.contains("deliberately wrong arithmetic"), "{stdout}");
    assert!(
        stdout.contains("test result: FAILED. 4 passed; 1 failed; 0 ignored;"),
        "{stdout}"
    );
}

/// The tests of one binary that `cargo nextest list` selects in `dir`'s
/// crate, in nextest's own names (`--message-format oneline`: the binary
/// id, then the test).
fn nextest_selects(dir: &Path, target: &Path, binary_id: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["nextest", "list", "--message-format", "oneline"])
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("run cargo nextest");
    assert!(
        out.status.success(),
        "cargo nextest list {args:?}: {}",
        text(&out.stderr)
    );
    let mut names: Vec<String> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(id, _)| *id == binary_id)
        .map(|(_, name)| name.trim().to_string())
        .collect();
    names.sort();
    names
}

/// The tests `vmdbg test --list` selects, and of them those it runs.
fn vmdbg_selects(binary: &Path, options: &[&str], harness: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut cmd = vmdbg();
    cmd.args(["test", "--engine", "qemu", "--list", "--format", "json"])
        .args(options)
        .arg("--")
        .arg(binary)
        .args(harness);
    let out = run(cmd, "vmdbg test --list", LIMIT);
    let listed = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{listed}\n{}",
        text(&out.stderr)
    );
    let (mut all, mut runs) = (Vec::new(), Vec::new());
    for line in listed.lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let name = event["name"].as_str().unwrap().to_string();
        if event["ignored"] == false {
            runs.push(name.clone());
        }
        all.push(name);
    }
    all.sort();
    runs.sort();
    (all, runs)
}

/// Issue 30: `vmdbg test --partition` selects exactly what cargo-nextest's
/// `--partition` selects from the same binary, for `hash` and `count` over
/// 2 and 3 shards: a real crate's suite (tempfile 3.27's `namedtempfile`,
/// 32 tests, from cargo's registry: the workspace depends on it), and the
/// isolation crate with its ignored test included (nextest deals ignored
/// tests out on their own). The shards are disjoint and make up the suite.
#[test]
fn partitions_select_exactly_what_cargo_nextest_selects() {
    if !linux_guest_ready("vmdbg_test_partition", &["cargo", "cargo-nextest"]) {
        return;
    }
    let registry = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"))
        .join("registry/src");
    let source = std::fs::read_dir(&registry)
        .ok()
        .into_iter()
        .flatten()
        .map(|e| e.unwrap().path().join("tempfile-3.27.0"))
        .find(|p| p.join("Cargo.toml").is_file())
        .unwrap_or_else(|| {
            panic!(
                "tempfile 3.27.0 is not in {} (`cargo fetch` in the workspace puts it there)",
                registry.display()
            )
        });
    let scratch = scratch_dir("vmdbg_test_partition");
    let tempfile = scratch.join("tempfile");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&source)
        .arg(&tempfile)
        .status()
        .unwrap();
    assert!(copied.success());
    let target = target_dir().join("partition-tempfile");
    let built = Command::new(env!("CARGO"))
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--test",
            "namedtempfile",
        ])
        .current_dir(&tempfile)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let binary = text(&built.stdout)
        .lines()
        .filter_map(cargo_test_executable)
        .next()
        .expect("cargo named the test binary");
    let isolation = test_binary();

    /// A crate, its target dir, its test binary, nextest's binary id, and
    /// the arguments that select the same tests in nextest and the harness.
    struct Suite<'a> {
        dir: &'a Path,
        target: &'a Path,
        binary: &'a Path,
        id: &'a str,
        nextest_args: &'a [&'a str],
        harness: &'a [&'a str],
    }
    let (isolation_dir, isolation_target) = (crate_dir(), target_dir());
    let suites = [
        Suite {
            dir: &tempfile,
            target: &target,
            binary: &binary,
            id: "tempfile::namedtempfile",
            nextest_args: &["-E", "binary(namedtempfile)"],
            harness: &[],
        },
        Suite {
            dir: &isolation_dir,
            target: &isolation_target,
            binary: &isolation,
            id: "isolation",
            nextest_args: &["--run-ignored", "all"],
            harness: &["--include-ignored"],
        },
    ];
    for suite in suites {
        let Suite {
            dir,
            target,
            binary,
            id,
            nextest_args,
            harness,
        } = suite;
        let (whole, _) = vmdbg_selects(binary, &[], harness);
        assert!(whole.len() >= 8, "{id}: {whole:?}");
        for kind in ["hash", "count"] {
            for total in [2u64, 3] {
                let mut union = Vec::new();
                for shard in 1..=total {
                    let partition = format!("{kind}:{shard}/{total}");
                    let mut args = vec!["--partition", partition.as_str()];
                    args.extend(nextest_args);
                    let want = nextest_selects(dir, target, id, &args);
                    let (_, got) = vmdbg_selects(binary, &["--partition", &partition], harness);
                    assert_eq!(
                        got, want,
                        "{id} --partition {partition}: vmdbg test ≠ cargo nextest"
                    );
                    union.extend(got);
                }
                union.sort();
                assert_eq!(
                    union, whole,
                    "{id}: the {kind} shards of {total} are disjoint and make up the suite"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
