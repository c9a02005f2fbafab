//! The docs cannot drift from the code: every relative link in README.md
//! and docs/ (and the extensions' READMEs) leads to a file that exists and,
//! with a `#fragment`, to a heading in it; every `vmdbg` and `vmdbg-vmm`
//! command shown in a shell block names subcommands and flags that the
//! built binaries' own `--help` lists. Nothing here runs a VM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use vmdbg_e2e::{vmdbg_binary, vmm_binary};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// README.md, every page under docs/, and the editor extensions' READMEs.
fn markdown_files() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    for extra in ["vscode-extension/README.md", "eclipse-plugin/README.md"] {
        let path = root.join(extra);
        if path.exists() {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The lines of `text` outside fenced code blocks, and the blocks' lines
/// with the block's language, each with its 1-based line number.
struct Split<'a> {
    prose: Vec<(usize, &'a str)>,
    code: Vec<(usize, String, &'a str)>,
}

fn split(text: &str) -> Split<'_> {
    let mut split = Split {
        prose: Vec::new(),
        code: Vec::new(),
    };
    let mut fence: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(info.trim().to_string()),
            };
            continue;
        }
        match &fence {
            Some(lang) => split.code.push((i + 1, lang.clone(), line)),
            None => split.prose.push((i + 1, line)),
        }
    }
    split
}

/// GitHub's anchor for a heading: lower case, punctuation dropped but `-`
/// and `_`, spaces to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in split(text).prose {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let heading = rest.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        // Markdown inside a heading: links keep their text, code its content.
        let plain: String = heading.replace(['`', '*'], "");
        let base = slug(&plain);
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// `](target)` links in a line of prose.
fn links(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        found.push(after[..end].split_whitespace().next().unwrap_or(""));
        rest = &after[end..];
    }
    found
}

#[test]
fn every_relative_link_resolves() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line_no, line) in split(&text).prose {
            for target in links(line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target, None),
                };
                let dest = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                let at = format!("{}:{line_no}", file.display());
                if !dest.exists() {
                    problems.push(format!(
                        "{at}: link `{target}`: {} does not exist",
                        dest.display()
                    ));
                    continue;
                }
                if let Some(fragment) = fragment {
                    if dest.extension().is_some_and(|e| e == "md") {
                        let there = anchors(&std::fs::read_to_string(&dest).unwrap());
                        if !there.contains(fragment) {
                            problems.push(format!(
                                "{at}: link `{target}`: no heading with anchor #{fragment} in {}",
                                dest.display()
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
    assert!(
        checked >= 10,
        "only {checked} relative links found: is the docs/ book there?"
    );
    eprintln!("docs: {checked} relative links resolve");
}

/// Splits a shell line into words, keeping quoted strings whole.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A program a docs command line runs, by the word that starts it.
fn program(word: &str) -> Option<&'static str> {
    match word.rsplit('/').next()? {
        "vmdbg" => Some("vmdbg"),
        "vmdbg-vmm" => Some("vmdbg-vmm"),
        _ => None,
    }
}

/// The commands in a shell block: each `vmdbg …` / `vmdbg-vmm …` as words,
/// cut at the shell's operators, a comment or `--` (what follows `--` is
/// the guest's command, not vmdbg's).
fn commands(block: &[&str]) -> Vec<Vec<String>> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in block {
        let line = line.trim();
        let line = line.strip_prefix("$ ").unwrap_or(line);
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(line);
            joined.push(std::mem::take(&mut current));
        }
    }
    let mut found = Vec::new();
    for line in joined {
        let mut command: Option<Vec<String>> = None;
        let mut at_start = true;
        for word in words(&line) {
            let operator = matches!(word.as_str(), "|" | "||" | "&&" | ";" | "&" | "--")
                || word.starts_with('#')
                || word.starts_with('>')
                || word.starts_with('<') && !word.ends_with('>')
                || word.starts_with("2>");
            if operator {
                at_start = true;
                if let Some(c) = command.take() {
                    found.push(c);
                }
                if word.starts_with('#') {
                    break;
                }
                continue;
            }
            match &mut command {
                Some(c) => c.push(word.trim_end_matches(';').to_string()),
                // Only a segment's first word runs a program (`cargo bench
                // -p vmdbg-vmm` does not run vmdbg-vmm); `VAR=value` and
                // `sudo` may come before it.
                None if at_start && program(&word).is_some() => command = Some(vec![word]),
                None if at_start && (word == "sudo" || word.contains('=')) => {}
                None => at_start = false,
            }
        }
        found.extend(command);
    }
    found
}

/// What `PROGRAM SUBCOMMANDS… --help` prints: its subcommands and flags.
#[derive(Default)]
struct Help {
    subcommands: BTreeSet<String>,
    flags: BTreeSet<String>,
}

fn help<'a>(
    program: &str,
    path: &[String],
    cache: &'a mut BTreeMap<Vec<String>, Option<Help>>,
) -> Option<&'a Help> {
    let mut key = vec![program.to_string()];
    key.extend(path.iter().cloned());
    cache
        .entry(key)
        .or_insert_with(|| {
            let binary = match program {
                "vmdbg" => vmdbg_binary(),
                _ => vmm_binary().to_path_buf(),
            };
            let out = Command::new(binary)
                .args(path)
                .arg("--help")
                .output()
                .unwrap();
            if !out.status.success() {
                return None;
            }
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut help = Help::default();
            let mut in_commands = false;
            for line in text.lines() {
                if line.starts_with("Commands:") {
                    in_commands = true;
                    continue;
                }
                if !line.starts_with(' ') {
                    in_commands = false;
                }
                let trimmed = line.trim_start();
                if in_commands {
                    if let Some(name) = trimmed.split_whitespace().next() {
                        help.subcommands.insert(name.to_string());
                    }
                }
                for word in trimmed.split([' ', ',', '=', '[', ']', '<']) {
                    if word.starts_with('-') && word.len() > 1 {
                        help.flags.insert(word.to_string());
                    }
                }
            }
            Some(help)
        })
        .as_ref()
}

#[test]
fn every_documented_command_is_one_the_cli_accepts() {
    let mut cache = BTreeMap::new();
    let mut problems = Vec::new();
    let mut checked = BTreeMap::<&str, usize>::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let parts = split(&text);
        let mut blocks: Vec<(usize, Vec<&str>)> = Vec::new();
        let mut last = None;
        for (line_no, lang, line) in &parts.code {
            if !matches!(lang.as_str(), "" | "sh" | "bash" | "console" | "shell") {
                continue;
            }
            if last != Some(line_no - 1) {
                blocks.push((*line_no, Vec::new()));
            }
            blocks.last_mut().unwrap().1.push(line);
            last = Some(*line_no);
        }
        for (line_no, block) in blocks {
            for command in commands(&block) {
                let program = program(&command[0]).unwrap();
                let at = format!("{}:{line_no} `{}`", file.display(), command.join(" "));
                let mut path: Vec<String> = Vec::new();
                let mut ok = true;
                for word in &command[1..] {
                    let Some(here) = help(program, &path, &mut cache) else {
                        problems.push(format!("{at}: `{program} {} --help` fails", path.join(" ")));
                        ok = false;
                        break;
                    };
                    if word.starts_with('-') {
                        let flag = word.split('=').next().unwrap();
                        if !here.flags.contains(flag) {
                            problems.push(format!(
                                "{at}: `{flag}` is not a flag of `{program} {}` (its --help lists {:?})",
                                path.join(" "),
                                here.flags
                            ));
                            ok = false;
                        }
                    } else if here.subcommands.contains(word.as_str()) {
                        path.push(word.clone());
                    } else if path.is_empty() && program == "vmdbg" {
                        problems.push(format!(
                            "{at}: `{word}` is not a vmdbg subcommand (they are {:?})",
                            here.subcommands
                        ));
                        ok = false;
                        break;
                    }
                }
                if ok {
                    *checked.entry(program).or_default() += 1;
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs name commands the CLI refuses:\n{}",
        problems.join("\n")
    );
    let vmdbg = checked.get("vmdbg").copied().unwrap_or(0);
    let vmm = checked.get("vmdbg-vmm").copied().unwrap_or(0);
    assert!(
        vmdbg >= 10 && vmm >= 3,
        "only {vmdbg} vmdbg and {vmm} vmdbg-vmm commands found in the docs' shell blocks"
    );
    eprintln!("docs: {vmdbg} vmdbg and {vmm} vmdbg-vmm commands match the CLI's --help");
}

#[test]
fn the_command_reader_finds_flags_and_stops_at_the_guest_command() {
    let found = commands(&[
        "vmdbg run --engine qemu -- uname -a  # a comment",
        "bash .ci/setup && cargo build --release && target/release/vmdbg run -- uname -a",
        "vmdbg-vmm --kernel guest.elf \\",
        "    --serial file:out.txt | tee log",
        "cargo bench -p vmdbg-vmm --bench vmm_bench",
        "RUST_LOG=debug sudo vmdbg dap --port 4711",
    ]);
    let as_text: Vec<String> = found.iter().map(|c| c.join(" ")).collect();
    assert_eq!(
        as_text,
        [
            "vmdbg run --engine qemu",
            "target/release/vmdbg run",
            "vmdbg-vmm --kernel guest.elf --serial file:out.txt",
            "vmdbg dap --port 4711",
        ]
    );
    assert_eq!(
        slug("Where the code stands (2026)"),
        "where-the-code-stands-2026"
    );
    assert_eq!(
        slug("`vmdbg test`: tests in VMs"),
        "vmdbg-test-tests-in-vms"
    );
}
