//! What `vmdbg test` says about its tests: libtest's own lines on a
//! terminal (`test name ... ok`, the failures' output, `test result: …`),
//! one JSON event per line for editors (`--format json`, modelled on
//! libtest's JSON events), and JUnit XML for CI servers (Jenkins, GitLab
//! and GitHub's reporters read `testsuites/testsuite/testcase` with
//! `failure`, `skipped`, `system-out`, `system-err` and `time`).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// The test's exit status said so, e.g. "exit status 101".
    Failed(String),
    Ignored,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    pub verdict: Verdict,
    pub duration: Duration,
    pub stdout: String,
    pub stderr: String,
    /// What the guest's console printed while the test ran.
    pub console: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// libtest's lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Prints each test as it ends, and the summary.
pub struct Reporter {
    pub format: Format,
}

impl Reporter {
    pub fn started(&self, count: usize) {
        match self.format {
            Format::Human => println!(
                "\nrunning {count} test{}",
                if count == 1 { "" } else { "s" }
            ),
            Format::Json => {
                emit(json!({ "type": "suite", "event": "started", "test_count": count }))
            }
        }
    }

    pub fn test_started(&self, name: &str) {
        if self.format == Format::Json {
            emit(json!({ "type": "test", "event": "started", "name": name }));
        }
    }

    pub fn test_ended(&self, o: &Outcome) {
        match self.format {
            Format::Human => {
                let word = match o.verdict {
                    Verdict::Passed => "ok",
                    Verdict::Failed(_) => "FAILED",
                    Verdict::Ignored => "ignored",
                };
                println!("test {} ... {word}", o.name);
            }
            Format::Json => {
                let (event, message) = match &o.verdict {
                    Verdict::Passed => ("ok", None),
                    Verdict::Failed(why) => ("failed", Some(why.clone())),
                    Verdict::Ignored => ("ignored", None),
                };
                emit(json!({
                    "type": "test", "event": event, "name": o.name,
                    "exec_time": o.duration.as_secs_f64(), "stdout": o.stdout, "stderr": o.stderr,
                    "console": o.console, "message": message,
                }));
            }
        }
    }

    /// The summary; true when every test that ran passed.
    pub fn finished(&self, outcomes: &[Outcome], filtered_out: usize, elapsed: Duration) -> bool {
        let count = |f: fn(&Verdict) -> bool| outcomes.iter().filter(|o| f(&o.verdict)).count();
        let passed = count(|v| *v == Verdict::Passed);
        let failed = count(|v| matches!(v, Verdict::Failed(_)));
        let ignored = count(|v| *v == Verdict::Ignored);
        let ok = failed == 0;
        match self.format {
            Format::Human => {
                if !ok {
                    println!("\nfailures:\n");
                    for o in outcomes
                        .iter()
                        .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
                    {
                        println!("---- {} stdout ----\n{}{}", o.name, o.stdout, o.stderr);
                        if let Verdict::Failed(why) = &o.verdict {
                            println!("({why})");
                        }
                        if !o.console.trim().is_empty() {
                            println!("---- {} guest console ----\n{}", o.name, o.console);
                        }
                    }
                    println!("\nfailures:");
                    for o in outcomes
                        .iter()
                        .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
                    {
                        println!("    {}", o.name);
                    }
                }
                println!(
                    "\ntest result: {}. {passed} passed; {failed} failed; {ignored} ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n",
                    if ok { "ok" } else { "FAILED" },
                    elapsed.as_secs_f64()
                );
            }
            Format::Json => emit(json!({
                "type": "suite", "event": if ok { "ok" } else { "failed" }, "passed": passed, "failed": failed,
                "ignored": ignored, "measured": 0, "filtered_out": filtered_out, "exec_time": elapsed.as_secs_f64(),
            })),
        }
        ok
    }
}

/// `vmdbg test --list`: each selected test, and whether it would be
/// skipped as ignored (`runs` false).
pub fn list(format: Format, tests: &[(String, bool)]) {
    for (name, runs) in tests {
        match format {
            Format::Human => println!("{name}: test{}", if *runs { "" } else { " (ignored)" }),
            Format::Json => emit(json!({
                "type": "test", "event": "listed", "name": name, "ignored": !runs,
            })),
        }
    }
}

fn emit(event: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}

/// Writes the JUnit XML report to a temporary name beside `path`, then
/// renames it into place: a report is whole or absent.
pub fn write_junit(
    path: &Path,
    suite: &str,
    outcomes: &[Outcome],
    elapsed: Duration,
) -> Result<()> {
    let failures = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
        .count();
    let skipped = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Ignored)
        .count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml += &format!(
        "<testsuites tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">\n",
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    xml += &format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\">\n",
        escape(suite),
        outcomes.len(),
        elapsed.as_secs_f64()
    );
    for o in outcomes {
        xml += &format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">\n",
            escape(suite),
            escape(&o.name),
            o.duration.as_secs_f64()
        );
        match &o.verdict {
            Verdict::Failed(why) => {
                let message = failure_message(&o.stdout, &o.stderr).unwrap_or_else(|| why.clone());
                xml += &format!(
                    "      <failure message=\"{}\" type=\"failure\">{}</failure>\n",
                    escape(&message),
                    escape(&format!("{why}\n{}{}", o.stdout, o.stderr))
                );
            }
            Verdict::Ignored => xml += "      <skipped/>\n",
            Verdict::Passed => {}
        }
        xml += &format!("      <system-out>{}</system-out>\n", escape(&o.stdout));
        xml += &format!(
            "      <system-err>{}</system-err>\n",
            escape(&format!("{}{}", o.stderr, o.console))
        );
        xml += "    </testcase>\n";
    }
    xml += "  </testsuite>\n</testsuites>\n";
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("write the JUnit report in {}", dir.display()))?;
    temp.write_all(xml.as_bytes())?;
    temp.persist(path)
        .with_context(|| format!("write the JUnit report {}", path.display()))?;
    Ok(())
}

/// A failing Rust test's panic message (`thread '…' panicked at …:\nMESSAGE`),
/// or GoogleTest's `Failure` lines: what a CI page shows as the reason.
fn failure_message(stdout: &str, stderr: &str) -> Option<String> {
    let text = format!("{stdout}{stderr}");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let detail: Vec<&str> = lines
                .by_ref()
                .take_while(|l| !l.starts_with("note:"))
                .collect();
            return Some(format!(
                "{}{}",
                line.trim(),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {}", detail.join(" "))
                }
            ));
        }
        if line.contains("Failure") {
            let detail: Vec<&str> = lines.by_ref().take(3).collect();
            return Some(format!("{} {}", line.trim(), detail.join(" ")));
        }
    }
    None
}

/// XML text and attribute escaping; control characters other than tab
/// and newline are not allowed in XML 1.0 and become U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_is_the_failure_message() {
        let stderr = "thread 'deliberately_fails' panicked at src/lib.rs:9:5:\nassertion `left == right` failed: on purpose\n  left: 1\n right: 2\nnote: run with `RUST_BACKTRACE=1`\n";
        let m = failure_message("", stderr).unwrap();
        assert!(
            m.starts_with("thread 'deliberately_fails' panicked at src/lib.rs:9:5:: assertion"),
            "{m}"
        );
        assert!(m.contains("right: 2"), "{m}");
    }

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\u{1b}"),
            "a&lt;b &amp; &quot;c&quot;\u{fffd}"
        );
    }
}
