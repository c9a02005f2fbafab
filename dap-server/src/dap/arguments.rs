//! The `launch` and `attach` arguments, from the request's JSON to a
//! [`StartConfig`]: the one place that decides what `vmdbg dap` accepts,
//! held to schema/launch.schema.json by the tests below (every property,
//! its type, pattern, minimum and enum, the required ones, and unknown
//! properties), so the schema VS Code validates with cannot drift from it.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::session::StartConfig;

/// Launch properties of kernel sessions only: a program session refuses
/// them rather than ignore them (the schema's `oneOf` says the same).
const KERNEL_ONLY: &[&str] = &[
    "symbols",
    "cmdline",
    "mem",
    "cpus",
    "vmm",
    "initrd",
    "run",
    "record",
    "recordLimit",
];
/// Launch properties of program sessions only.
const PROGRAM_ONLY: &[&str] = &["args", "test", "setup", "env", "cwd", "image"];

/// A `launch` request's arguments: a program session or a kernel session.
pub fn parse_launch(args: Value) -> Result<StartConfig> {
    let has = |key: &str| args.get(key).is_some();
    let other_mode = |keys: &[&'static str]| keys.iter().copied().find(|k| has(k));
    let config = match (has("program"), has("kernel")) {
        (true, true) => {
            bail!("invalid launch configuration: give either `program` or `kernel`, not both")
        }
        (true, false) => {
            if let Some(key) = other_mode(KERNEL_ONLY) {
                bail!("invalid program launch configuration: `{key}` is for kernel sessions (with `kernel`); a program session does not take it");
            }
            StartConfig::Program(
                serde_json::from_value(args).context("invalid program launch configuration")?,
            )
        }
        (false, true) => {
            if let Some(key) = other_mode(PROGRAM_ONLY) {
                bail!("invalid launch configuration: `{key}` is for program sessions (with `program`); a kernel session does not take it");
            }
            let config: super::launch::LaunchConfig =
                serde_json::from_value(args).context("invalid launch configuration")?;
            if let Some(mem) = &config.mem {
                if !is_mem_size(mem) {
                    bail!("invalid launch configuration: mem `{mem}`: expected a number with an optional K, M or G suffix, e.g. 128M");
                }
            }
            if config.cpus == Some(0) {
                bail!("invalid launch configuration: cpus must be at least 1");
            }
            if config.record_limit == Some(0) {
                bail!("invalid launch configuration: recordLimit must be at least 1 (seconds)");
            }
            StartConfig::Launch(config)
        }
        (false, false) => bail!(
            "invalid launch configuration: give `kernel` (a guest kernel) or `program` (a program to run in a fresh Linux VM)"
        ),
    };
    Ok(config)
}

/// An `attach` request's arguments.
pub fn parse_attach(args: Value) -> Result<StartConfig> {
    let config: super::launch::AttachConfig =
        serde_json::from_value(args).context("invalid attach configuration")?;
    if !is_gdb_server(&config.gdb_server) {
        bail!(
            "invalid attach configuration: gdbServer `{}`: expected host:port (e.g. localhost:1234) or unix:/path",
            config.gdb_server
        );
    }
    Ok(StartConfig::Attach(config))
}

/// `^[0-9]+[KMGkmg]?$`, the schema's pattern for `mem`.
fn is_mem_size(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'k', 'm', 'g']);
    text.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `^(unix:.+|[^:]*:[0-9]+)$`, the schema's pattern for `gdbServer`.
fn is_gdb_server(text: &str) -> bool {
    if let Some(path) = text.strip_prefix("unix:") {
        return !path.is_empty();
    }
    match text.split_once(':') {
        Some((host, port)) => {
            !host.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn schema() -> Value {
        serde_json::from_str(include_str!("../../schema/launch.schema.json")).unwrap()
    }

    /// For each patterned property: a value the pattern takes and one it
    /// refuses. A pattern added to the schema without a line here fails
    /// `every_pattern_has_examples`.
    const PATTERN_EXAMPLES: &[(&str, &str, &str)] = &[
        ("mem", "512M", "lots"),
        ("gdbServer", "localhost:1234", "localhost"),
    ];

    /// A value of the property's schema that the schema accepts.
    fn valid_value(name: &str, prop: &Value) -> Value {
        if let Some((_, good, _)) = PATTERN_EXAMPLES.iter().find(|(n, _, _)| *n == name) {
            return json!(good);
        }
        if let Some(default) = prop.get("default") {
            return default.clone();
        }
        match prop["type"].as_str().unwrap() {
            "string" => json!("/some/path"),
            "integer" => json!(prop.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
            "boolean" => json!(true),
            "array" => json!([]),
            "object" => {
                let mut o = Map::new();
                for (key, sub) in prop["properties"].as_object().into_iter().flatten() {
                    o.insert(key.clone(), valid_value(key, sub));
                }
                Value::Object(o)
            }
            other => panic!("{name}: schema type {other} this test does not know"),
        }
    }

    /// Values of other JSON types than the schema's: all must be refused.
    fn ill_typed(prop: &Value) -> Vec<Value> {
        let ty = prop["type"].as_str().unwrap();
        [
            ("string", json!("text")),
            ("integer", json!(7)),
            ("boolean", json!(false)),
            ("array", json!(["a"])),
            ("object", json!({"a": "b"})),
            ("number", json!(1.5)),
        ]
        .into_iter()
        .filter(|(t, _)| *t != ty)
        .map(|(_, v)| v)
        .collect()
    }

    fn with(base: &Value, key: &str, value: Value) -> Value {
        let mut args = base.clone();
        args[key] = value;
        args
    }

    /// The launch bases a property belongs to: the schema's description
    /// says "Program mode:" or "Kernel mode:"; otherwise both.
    fn launch_bases(prop: &Value) -> Vec<Value> {
        let description = prop["description"].as_str().unwrap_or("");
        let program = json!({"program": "/bin/true"});
        let kernel = json!({"kernel": "/boot/k.elf"});
        if description.starts_with("Program mode:") {
            vec![program]
        } else if description.starts_with("Kernel mode:") {
            vec![kernel]
        } else {
            vec![program, kernel]
        }
    }

    fn check_properties(
        definition: &str,
        parse: fn(Value) -> Result<StartConfig>,
        bases: &dyn Fn(&Value) -> Vec<Value>,
    ) {
        let schema = schema();
        let props = schema["definitions"][definition]["properties"]
            .as_object()
            .unwrap();
        for (name, prop) in props {
            for base in bases(prop) {
                let good = with(&base, name, valid_value(name, prop));
                if let Err(e) = parse(good.clone()) {
                    panic!("{definition}: the schema allows {good}, vmdbg refuses it: {e:#}");
                }
                for bad in ill_typed(prop) {
                    let args = with(&base, name, bad);
                    assert!(
                        parse(args.clone()).is_err(),
                        "{definition}.{name} is {} in the schema, but vmdbg accepts {args}",
                        prop["type"]
                    );
                }
                if let Some(values) = prop.get("enum").and_then(Value::as_array) {
                    for v in values {
                        let args = with(&base, name, v.clone());
                        assert!(
                            parse(args.clone()).is_ok(),
                            "the schema's enum allows {args}"
                        );
                    }
                    let args = with(&base, name, json!("not-in-the-enum"));
                    assert!(parse(args.clone()).is_err(), "vmdbg accepts {args}");
                }
                if prop.get("pattern").is_some() {
                    let (_, _, refused) = PATTERN_EXAMPLES
                        .iter()
                        .find(|(n, _, _)| n == name)
                        .unwrap_or_else(|| panic!("{name} has a pattern and no examples here"));
                    let args = with(&base, name, json!(refused));
                    assert!(
                        parse(args.clone()).is_err(),
                        "the pattern refuses {args}; vmdbg accepts it"
                    );
                }
                if let Some(min) = prop.get("minimum").and_then(Value::as_i64) {
                    let args = with(&base, name, json!(min - 1));
                    assert!(
                        parse(args.clone()).is_err(),
                        "the minimum refuses {args}; vmdbg accepts it"
                    );
                }
                if let Some(required) = prop.get("required").and_then(Value::as_array) {
                    for key in required {
                        let mut value = valid_value(name, prop);
                        value.as_object_mut().unwrap().remove(key.as_str().unwrap());
                        let args = with(&base, name, value);
                        assert!(
                            parse(args.clone()).is_err(),
                            "{name}.{key} is required; vmdbg accepts {args}"
                        );
                    }
                }
                if prop.get("additionalProperties") == Some(&json!(false)) {
                    let mut value = valid_value(name, prop);
                    value["noSuchProperty"] = json!(1);
                    let args = with(&base, name, value);
                    assert!(
                        parse(args.clone()).is_err(),
                        "{name} takes no other properties; vmdbg accepts {args}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_launch_property_is_taken_and_typed_as_the_schema_says() {
        check_properties("launch", parse_launch, &launch_bases);
    }

    #[test]
    fn every_attach_property_is_taken_and_typed_as_the_schema_says() {
        let base = json!({"gdbServer": "localhost:1234", "symbols": "/boot/k.elf"});
        check_properties("attach", parse_attach, &move |_| vec![base.clone()]);
    }

    #[test]
    fn required_and_one_of_are_enforced_as_the_schema_says() {
        let schema = schema();
        let attach = &schema["definitions"]["attach"];
        let full = json!({"gdbServer": "localhost:1234", "symbols": "/boot/k.elf"});
        assert!(parse_attach(full.clone()).is_ok());
        for key in attach["required"].as_array().unwrap() {
            let mut args = full.clone();
            args.as_object_mut().unwrap().remove(key.as_str().unwrap());
            assert!(
                parse_attach(args.clone()).is_err(),
                "{key} is required; vmdbg accepts {args}"
            );
        }
        // launch: exactly one of the oneOf branches' required properties.
        let branches: Vec<&str> = schema["definitions"]["launch"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["required"][0].as_str().unwrap())
            .collect();
        assert_eq!(branches, ["program", "kernel"]);
        assert!(parse_launch(json!({"program": "/bin/true", "kernel": "/k"})).is_err());
        assert!(parse_launch(json!({"cwd": "/"})).is_err());
    }

    /// Each mode's properties are refused in the other mode, as the
    /// schema's `oneOf` branches say (`not` any of them), and those lists
    /// are the properties its descriptions mark "Program mode:" and
    /// "Kernel mode:".
    #[test]
    fn one_modes_properties_are_refused_in_the_other_as_the_schema_says() {
        let schema = schema();
        let launch = &schema["definitions"]["launch"];
        let marked = |prefix: &str, own: &str| -> Vec<String> {
            let mut keys: Vec<String> = launch["properties"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, p)| {
                    *k != own && p["description"].as_str().unwrap_or("").starts_with(prefix)
                })
                .map(|(k, _)| k.clone())
                .collect();
            keys.sort();
            keys
        };
        for (branch, own, other, other_prefix, other_own) in [
            (0, "program", "kernel", "Kernel mode:", "kernel"),
            (1, "kernel", "program", "Program mode:", "program"),
        ] {
            let b = &launch["oneOf"][branch];
            assert_eq!(b["required"], json!([own]));
            let mut refused: Vec<String> = b["not"]["anyOf"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["required"][0].as_str().unwrap().to_string())
                .filter(|k| k != other)
                .collect();
            refused.sort();
            assert_eq!(refused, marked(other_prefix, other_own), "{own} branch");
            for key in &refused {
                let prop = &launch["properties"][key];
                let mut args = json!({ own: "/some/path" });
                args[key.as_str()] = valid_value(key, prop);
                let err = parse_launch(args.clone())
                    .err()
                    .unwrap_or_else(|| panic!("the schema refuses {args}; vmdbg accepts it"));
                assert!(
                    format!("{err:#}").contains(&format!("`{key}` is for")),
                    "{err:#}"
                );
            }
        }
    }

    #[test]
    fn unknown_properties_are_taken_where_the_schema_allows_them() {
        // Neither definition says additionalProperties: false (VS Code adds
        // name, type, request, preLaunchTask … to every configuration).
        let schema = schema();
        for definition in ["launch", "attach"] {
            assert_eq!(
                schema["definitions"][definition].get("additionalProperties"),
                None,
                "{definition}: update this test with the schema"
            );
        }
        let extra =
            json!({"name": "x", "type": "vmdbg", "request": "launch", "noSuchProperty": [1]});
        for base in [
            json!({"program": "/bin/true"}),
            json!({"kernel": "/boot/k.elf"}),
        ] {
            let mut args = base.clone();
            args.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            assert!(parse_launch(args.clone()).is_ok(), "{args}");
        }
        let mut attach = json!({"gdbServer": "unix:/run/gdb.sock", "symbols": "/k"});
        attach
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert!(parse_attach(attach.clone()).is_ok(), "{attach}");
    }

    #[test]
    fn every_pattern_has_examples() {
        let schema = schema();
        for definition in ["launch", "attach"] {
            for (name, prop) in schema["definitions"][definition]["properties"]
                .as_object()
                .unwrap()
            {
                if prop.get("pattern").is_some() {
                    assert!(PATTERN_EXAMPLES.iter().any(|(n, _, _)| n == name), "{name}");
                }
            }
        }
        // Each property's own check: with `||` a value one of them takes
        // would pass for the other. The schema's patterns themselves are
        // evaluated on this table by ajv (vscode-extension's unit tests).
        for (name, good, bad) in PATTERN_EXAMPLES {
            let check: fn(&str) -> bool = match *name {
                "mem" => is_mem_size,
                "gdbServer" => is_gdb_server,
                other => panic!("{other}: name its check here"),
            };
            assert!(check(good), "{name}: {good}");
            assert!(!check(bad), "{name}: {bad}");
        }
    }

    /// A VS Code snippet string as "Add Configuration…" inserts it:
    /// `${1:text}` is `text`, `${1|a,b|}` is `a`, `$1`/`${1}` are empty,
    /// an unknown variable `${name}` is its name, `\$` `\}` `\\` are the
    /// character (as vscode-extension/test/unit/launchExamples.ts, which
    /// tests this reading against examples).
    fn expand_snippet_text(text: &str) -> String {
        fn parse(c: &[char], i: &mut usize, stop: Option<char>) -> String {
            let mut out = String::new();
            while *i < c.len() {
                let ch = c[*i];
                if ch == '\\' && *i + 1 < c.len() && "$}\\".contains(c[*i + 1]) {
                    out.push(c[*i + 1]);
                    *i += 2;
                } else if Some(ch) == stop {
                    return out;
                } else if ch == '$' && c.get(*i + 1) == Some(&'{') {
                    *i += 2;
                    let start = *i;
                    while *i < c.len() && (c[*i].is_ascii_alphanumeric() || c[*i] == '_') {
                        *i += 1;
                    }
                    let head: String = c[start..*i].iter().collect();
                    let numeric = head.starts_with(|d: char| d.is_ascii_digit());
                    match c.get(*i) {
                        Some('}') => {
                            *i += 1;
                            if !numeric {
                                out.push_str(&head);
                            }
                        }
                        Some(':') => {
                            *i += 1;
                            out.push_str(&parse(c, i, Some('}')));
                            *i += 1;
                        }
                        Some('|') => {
                            let rest: String = c[*i + 1..].iter().collect();
                            let end = rest.find("|}").expect("unterminated choice");
                            out.push_str(rest[..end].split(',').next().unwrap());
                            *i += 1 + rest[..end].chars().count() + 2;
                        }
                        _ => panic!("bad snippet placeholder in {c:?}"),
                    }
                } else if ch == '$'
                    && c.get(*i + 1)
                        .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_')
                {
                    *i += 1;
                    let start = *i;
                    while *i < c.len() && (c[*i].is_ascii_alphanumeric() || c[*i] == '_') {
                        *i += 1;
                    }
                    if !c[start].is_ascii_digit() {
                        out.extend(&c[start..*i]);
                    }
                } else {
                    out.push(ch);
                    *i += 1;
                }
            }
            assert!(stop.is_none(), "unterminated placeholder in {c:?}");
            out
        }
        let chars: Vec<char> = text.chars().collect();
        parse(&chars, &mut 0, None)
    }

    /// A snippet body as inserted: a string starting `^` is raw JSON text.
    fn expand_snippet(value: &Value) -> Value {
        match value {
            Value::String(s) => match s.strip_prefix('^') {
                Some(raw) => serde_json::from_str(&expand_snippet_text(raw))
                    .unwrap_or_else(|e| panic!("snippet text {s:?}: {e}")),
                None => Value::String(expand_snippet_text(s)),
            },
            Value::Array(a) => Value::Array(a.iter().map(expand_snippet).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), expand_snippet(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// What VS Code sends for a configuration: its `${…}` variables replaced.
    fn substitute_variables(value: &Value) -> Value {
        match value {
            Value::String(s) => {
                assert!(
                    !s.replace("${workspaceFolder}", "").contains("${"),
                    "a VS Code variable this test does not know in {s:?}"
                );
                Value::String(s.replace("${workspaceFolder}", "/home/user/project"))
            }
            Value::Array(a) => Value::Array(a.iter().map(substitute_variables).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), substitute_variables(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// JSON text with `//` line comments (outside strings) removed.
    fn strip_line_comments(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        let mut in_string = false;
        while let Some(c) = chars.next() {
            if in_string {
                out.push(c);
                if c == '\\' {
                    out.extend(chars.next());
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
                out.push(c);
            } else if c == '/' && chars.peek() == Some(&'/') {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    fn vmdbg_configs(value: &Value, found: &mut Vec<Value>) {
        match value {
            Value::Array(a) => a.iter().for_each(|v| vmdbg_configs(v, found)),
            Value::Object(o) if o.get("type") == Some(&json!("vmdbg")) => found.push(value.clone()),
            Value::Object(o) => o.values().for_each(|v| vmdbg_configs(v, found)),
            _ => {}
        }
    }

    /// The `"type": "vmdbg"` configurations in a Markdown file's json/jsonc blocks.
    fn markdown_examples(rel: &str) -> Vec<(String, Value)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(rel);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut found = Vec::new();
        let mut lines = text.lines().enumerate();
        while let Some((n, line)) = lines.next() {
            if line != "```json" && line != "```jsonc" {
                continue;
            }
            let block: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| !l.starts_with("```"))
                .collect();
            let stripped = strip_line_comments(&block.join("\n"));
            for value in serde_json::Deserializer::from_str(&stripped).into_iter::<Value>() {
                let value = value.unwrap_or_else(|e| panic!("{rel}:{}: {e}", n + 1));
                let mut configs = Vec::new();
                vmdbg_configs(&value, &mut configs);
                found.extend(configs.into_iter().map(|c| (format!("{rel}:{}", n + 1), c)));
            }
        }
        found
    }

    /// Every configuration a user is handed (the extension's snippets and
    /// initial configuration, the READMEs' examples) is one `vmdbg dap`
    /// takes, once VS Code has put in its placeholders' defaults and its
    /// variables.
    #[test]
    fn every_snippet_and_documented_example_is_a_configuration_vmdbg_takes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../vscode-extension/package.json");
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let debugger = manifest["contributes"]["debuggers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["type"] == "vmdbg")
            .unwrap();
        let mut examples: Vec<(String, Value)> = Vec::new();
        for s in debugger["configurationSnippets"].as_array().unwrap() {
            examples.push((
                format!("snippet {}", s["label"]),
                expand_snippet(&s["body"]),
            ));
        }
        for (i, c) in debugger["initialConfigurations"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            examples.push((format!("initialConfigurations[{i}]"), c.clone()));
        }
        examples.extend(markdown_examples("README.md"));
        examples.extend(markdown_examples("vscode-extension/README.md"));
        // The launch.json examples live in the docs/ book.
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let mut pages: Vec<String> = std::fs::read_dir(&docs)
            .unwrap_or_else(|e| panic!("{}: {e}", docs.display()))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".md"))
            .collect();
        pages.sort();
        for page in pages {
            examples.extend(markdown_examples(&format!("docs/{page}")));
        }
        let count = |prefix: &str| {
            examples
                .iter()
                .filter(|(w, _)| w.starts_with(prefix))
                .count()
        };
        assert_eq!(count("snippet "), 5);
        assert_eq!(count("initialConfigurations"), 1);
        assert!(count("docs/") >= 5, "{examples:?}");
        for (where_, config) in &examples {
            let args = substitute_variables(config);
            let parsed = match args["request"].as_str() {
                Some("launch") => parse_launch(args.clone()),
                Some("attach") => parse_attach(args.clone()),
                other => panic!("{where_}: request {other:?}"),
            };
            if let Err(e) = parsed {
                panic!("{where_}: vmdbg dap refuses {args}: {e:#}");
            }
        }
    }

    #[test]
    fn snippets_expand_as_vs_code_inserts_them() {
        assert_eq!(
            expand_snippet_text("${1:cat /etc/hostname}"),
            "cat /etc/hostname"
        );
        assert_eq!(
            expand_snippet_text(r#""\${workspaceFolder}/${1:a.out}""#),
            r#""${workspaceFolder}/a.out""#
        );
        assert_eq!(expand_snippet_text("${1|qemu,kvm|}-$2-${3}"), "qemu--");
        assert_eq!(
            expand_snippet_text("${workspaceFolder}/x"),
            "workspaceFolder/x"
        );
        assert_eq!(
            expand_snippet(&json!({"program": r#"^"\${workspaceFolder}/${1:a.out}""#, "n": 3})),
            json!({"program": "${workspaceFolder}/a.out", "n": 3})
        );
    }
}
