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
        for (_, good, bad) in PATTERN_EXAMPLES {
            assert!(is_mem_size(good) || is_gdb_server(good), "{good}");
            assert!(!is_mem_size(bad) && !is_gdb_server(bad), "{bad}");
        }
    }
}
