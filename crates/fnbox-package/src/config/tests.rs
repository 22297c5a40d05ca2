//! Unit tests of `parse_config`: every message names the file, the field and what is allowed.

use super::*;

const FILE: &str = "examples/x/function.yaml";

fn parse(text: &str) -> Result<FunctionConfig, PackageError> {
    parse_config(text, Path::new(FILE), "x")
}

/// The message of a failing parse; panics when the parse succeeds.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(config) => panic!("expected an error for {text:?}, got {config:?}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "{message:?} does not mention {part:?}"
        );
    }
}

#[test]
fn empty_file_gives_all_defaults() {
    for text in ["", "# just a comment\n", "{}"] {
        let c = parse(text).unwrap();
        assert_eq!(c, FunctionConfig::defaults("x"));
    }
    let c = FunctionConfig::defaults("x");
    assert_eq!(c.package, "default");
    assert_eq!(c.runtime, Runtime::Custom);
    assert_eq!(c.runtime_name, "Custom");
    assert_eq!(c.handler, "index.handler");
    assert_eq!(
        (c.memory_size, c.timeout, c.initializer_timeout),
        (128, 3, 3)
    );
    assert_eq!(
        (
            c.concurrent_num,
            c.max_instances,
            c.reserved_instances,
            c.idle_timeout
        ),
        (1, 10, 0, 60)
    );
    assert_eq!(c.dialect, Dialect::FunctionGraph);
    assert!(c.user_data.is_empty() && c.initializer_handler.is_none());
}

#[test]
fn full_config_and_derived_values() {
    let c = parse(
        "func_name: hello-fn\n\
         package: app_1\n\
         runtime: Python3.9\n\
         handler: index.handler\n\
         memory_size: 512\n\
         timeout: 900\n\
         initializer_handler: index.init\n\
         initializer_timeout: 300\n\
         user_data: {LOG_LEVEL: debug, _X1: \"\"}\n\
         concurrent_num: 1000\n\
         max_instances: 5\n\
         reserved_instances: 5\n\
         idle_timeout: 86400\n\
         dialect: functiongraph\n",
    )
    .unwrap();
    assert_eq!(c.func_name, "hello-fn");
    assert_eq!(c.package, "app_1");
    assert_eq!(
        c.runtime,
        Runtime::Python {
            version: "3.9".into()
        }
    );
    assert_eq!(c.runtime_name, "Python3.9");
    assert_eq!(c.initializer_handler.as_deref(), Some("index.init"));
    assert_eq!(c.user_data["LOG_LEVEL"], "debug");
    assert_eq!(c.user_data["_X1"], "");
    assert_eq!(c.timeout_duration(), Duration::from_secs(900));
    assert_eq!(c.memory_bytes(), 512 * 1024 * 1024);
    assert_eq!(c.cpu_millicores(), 600);
    assert_eq!(
        c.urn(),
        "urn:fss:local:local:function:app_1:hello-fn:latest"
    );
    assert_eq!(FunctionConfig::defaults("x").cpu_millicores(), 300);
}

#[test]
fn null_fields_mean_default() {
    let c = parse("timeout: ~\nhandler:\n").unwrap();
    assert_eq!((c.timeout, c.handler.as_str()), (3, "index.handler"));
}

#[test]
fn memory_size_must_be_one_of_the_list() {
    let m = error("memory_size: 100");
    assert_eq!(
        m,
        "examples/x/function.yaml: field 'memory_size': 100 is not allowed; allowed values: \
         128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 8192, 10240 (MB)"
    );
    for size in MEMORY_SIZES {
        assert_eq!(
            parse(&format!("memory_size: {size}")).unwrap().memory_size,
            *size
        );
    }
    assert_mentions(
        &error("memory_size: -128"),
        &["memory_size", "-128", "128, 256"],
    );
    assert_mentions(
        &error("memory_size: 99999999999"),
        &["memory_size", "99999999999"],
    );
    // Larger than any integer type: still the field and the value, not a serde type error.
    let m = error("memory_size: 99999999999999999999");
    assert_mentions(&m, &["memory_size", "99999999999999999999", "out of range"]);
    assert!(!m.contains("u128"), "{m}");
}

#[test]
fn ranges_name_file_field_and_bounds() {
    let cases: &[(&str, &str, &str, &str)] = &[
        ("timeout", "2", "3", "900"),
        ("timeout", "901", "3", "900"),
        ("initializer_timeout", "0", "1", "300"),
        ("initializer_timeout", "301", "1", "300"),
        ("concurrent_num", "0", "1", "1000"),
        ("concurrent_num", "1001", "1", "1000"),
        ("max_instances", "0", "1", "1000"),
        ("max_instances", "1001", "1", "1000"),
        ("idle_timeout", "0", "1", "86400"),
        ("idle_timeout", "86401", "1", "86400"),
        ("reserved_instances", "-1", "0", "10"),
        ("reserved_instances", "11", "0", "10"),
    ];
    for (field, bad, lo, hi) in cases {
        let m = error(&format!("{field}: {bad}"));
        assert_mentions(
            &m,
            &[
                FILE,
                &format!("field '{field}'"),
                bad,
                &format!("{lo} to {hi}"),
            ],
        );
        // The bounds themselves are accepted.
        parse(&format!("{field}: {lo}")).unwrap();
        parse(&format!("{field}: {hi}")).unwrap();
    }
}

#[test]
fn reserved_instances_is_bounded_by_max_instances() {
    let m = error("max_instances: 3\nreserved_instances: 4");
    assert_mentions(&m, &["reserved_instances", "4", "0 to 3", "max_instances"]);
    assert_eq!(
        parse("max_instances: 3\nreserved_instances: 3")
            .unwrap()
            .reserved_instances,
        3
    );
}

#[test]
fn wrong_types_name_the_field() {
    let m = error("timeout: \"30\"");
    assert_mentions(
        &m,
        &[
            FILE,
            "field 'timeout'",
            "expected a whole number",
            "string",
            "without quotes",
        ],
    );
    assert_mentions(&error("timeout: 3.5"), &["field 'timeout'", "3.5"]);
    assert_mentions(
        &error("memory_size: [128]"),
        &["field 'memory_size'", "a list"],
    );
    assert_mentions(
        &error("func_name: 123"),
        &["field 'func_name'", "expected a string", "123"],
    );
    assert_mentions(&error("handler: {a: b}"), &["field 'handler'", "a mapping"]);
    assert_mentions(&error("user_data: [A]"), &["field 'user_data'", "a list"]);
}

#[test]
fn names_follow_the_pattern() {
    let m = error("func_name: 9lives");
    assert_mentions(
        &m,
        &[
            FILE,
            "field 'func_name'",
            "9lives",
            "^[A-Za-z][A-Za-z0-9_-]{0,59}$",
        ],
    );
    assert_mentions(&error("package: \"a b\""), &["field 'package'", "a b"]);
    let long = format!("func_name: a{}", "b".repeat(60));
    assert_mentions(&error(&long), &["func_name"]);
    parse(&format!("func_name: a{}", "b".repeat(59))).unwrap();
}

#[test]
fn invalid_default_name_asks_for_func_name() {
    let e = parse_config("timeout: 5", Path::new(FILE), "my function").unwrap_err();
    assert_mentions(
        &e.to_string(),
        &[FILE, "func_name", "'my function'", "set func_name"],
    );
    let c = parse_config("func_name: ok", Path::new(FILE), "my function").unwrap();
    assert_eq!(c.func_name, "ok");
}

#[test]
fn unknown_fields_are_rejected_with_the_allowed_list() {
    let m = error("memory: 128");
    assert_mentions(
        &m,
        &[
            FILE,
            "unknown field 'memory'",
            "allowed fields: func_name, package, runtime",
            "dialect",
        ],
    );
    assert_mentions(&error("MemorySize: 128"), &["did you mean 'memory_size'?"]);
    assert_mentions(&error("timeuot: 5"), &["did you mean 'timeout'?"]);
    assert_mentions(&error("description: hi"), &["unknown field 'description'"]);
    assert_mentions(&error("3: x"), &["field names must be strings"]);
}

#[test]
fn yaml_syntax_errors_give_line_and_column() {
    let m = error("timeout: 3\nhandler: [index.handler\nmemory_size: 128\n");
    assert!(m.starts_with("examples/x/function.yaml:"), "{m}");
    assert_mentions(&m, &["invalid YAML"]);
    let m = error("timeout: 3\n  bad: : indentation\n");
    assert_mentions(&m, &["examples/x/function.yaml:2:", "invalid YAML"]);
    assert!(!m.contains(" at line "), "location printed twice: {m}");
    // Duplicate keys are an error, not "last one wins".
    assert_mentions(
        &error("# c\ntimeout: 3\nhandler: x\ntimeout: 5\n"),
        &[
            "examples/x/function.yaml:4:1: invalid YAML: duplicate",
            "timeout",
        ],
    );
    assert_mentions(
        &error("user_data: {A: x, A: y}"),
        &[FILE, "duplicate", "\"A\""],
    );
}

#[test]
fn top_level_must_be_a_mapping() {
    assert_mentions(
        &error("- a\n- b\n"),
        &[FILE, "expected a mapping", "a list"],
    );
}

#[test]
fn json_config() {
    let origin = Path::new("fn/function.json");
    let c = parse_config(
        "{\n\t\"runtime\": \"Node.js18.15\",\n\t\"memory_size\": 256,\n\t\"user_data\": {\"A\": \"1\"}\n}",
        origin,
        "fn",
    )
    .unwrap();
    assert_eq!(
        c.runtime,
        Runtime::Node {
            version: "18.15".into()
        }
    );
    assert_eq!(c.memory_size, 256);
    let m = parse_config("{\n  \"timeout\": 3,\n}", origin, "fn")
        .unwrap_err()
        .to_string();
    assert_mentions(&m, &["fn/function.json:3:", "invalid JSON"]);
    let m = parse_config("{\"timeout\": 3, \"timeout\": 4}", origin, "fn")
        .unwrap_err()
        .to_string();
    assert_mentions(&m, &["fn/function.json", "duplicate"]);
    let m = parse_config("{\"memory_size\": 100}", origin, "fn")
        .unwrap_err()
        .to_string();
    assert_mentions(&m, &["fn/function.json: field 'memory_size'", "128"]);
}

#[test]
fn functiongraph_runtimes() {
    let ok: &[(&str, Runtime)] = &[
        ("Custom", Runtime::Custom),
        ("custom", Runtime::Custom),
        ("http", Runtime::Http),
        ("HTTP", Runtime::Http),
        (
            "Python3.6",
            Runtime::Python {
                version: "3.6".into(),
            },
        ),
        (
            "Python3.10",
            Runtime::Python {
                version: "3.10".into(),
            },
        ),
        (
            "Python3.12",
            Runtime::Python {
                version: "3.12".into(),
            },
        ),
        (
            "Node.js14.18",
            Runtime::Node {
                version: "14.18".into(),
            },
        ),
        (
            "Node.js20.15",
            Runtime::Node {
                version: "20.15".into(),
            },
        ),
        (
            "Python2.7",
            Runtime::Python {
                version: "2.7".into(),
            },
        ),
        (
            "Node.js6.10",
            Runtime::Node {
                version: "6.10".into(),
            },
        ),
    ];
    for (name, runtime) in ok {
        let c = parse(&format!("runtime: {name}")).unwrap();
        assert_eq!((&c.runtime, c.runtime_name.as_str()), (runtime, *name));
    }
    for bad in ["Java8", "Python2.6", "Python3", "Node.js", "provided.al2"] {
        let m = error(&format!("runtime: {bad}"));
        assert_mentions(
            &m,
            &[
                FILE,
                "field 'runtime'",
                bad,
                "Custom, http, Python2.7, Python3.",
                "Node.js",
            ],
        );
    }
    assert_mentions(&error("runtime: python3.12x"), &["runtime"]);
    assert_mentions(&error("runtime: provided.al2"), &["dialect: lambda"]);
}

#[test]
fn lambda_runtimes() {
    let ok: &[(&str, Runtime)] = &[
        ("provided", Runtime::Custom),
        ("provided.al2", Runtime::Custom),
        ("provided.al2023", Runtime::Custom),
        (
            "python3.12",
            Runtime::Python {
                version: "3.12".into(),
            },
        ),
        (
            "python3.9",
            Runtime::Python {
                version: "3.9".into(),
            },
        ),
        (
            "nodejs20.x",
            Runtime::Node {
                version: "20".into(),
            },
        ),
    ];
    for (name, runtime) in ok {
        let c = parse(&format!("dialect: lambda\nruntime: {name}")).unwrap();
        assert_eq!(&c.runtime, runtime);
        assert_eq!(c.dialect, Dialect::Lambda);
    }
    for bad in [
        "Custom",
        "http",
        "Python3.9x",
        "nodejs20",
        "java21",
        "provided.al3",
    ] {
        let m = error(&format!("dialect: lambda\nruntime: {bad}"));
        assert_mentions(
            &m,
            &[
                "field 'runtime'",
                "dialect lambda",
                "provided.al2023",
                "nodejs<major>.x",
            ],
        );
    }
    let c = parse("dialect: lambda").unwrap();
    assert_eq!(
        (c.runtime, c.runtime_name.as_str()),
        (Runtime::Custom, "provided.al2023")
    );
    // Lambda has no default handler: a provided function without one passes "" on.
    assert_eq!(c.handler, "");
    assert_eq!(
        parse(
            "dialect: lambda
handler: app.main"
        )
        .unwrap()
        .handler,
        "app.main"
    );
    assert_eq!(parse("").unwrap().handler, "index.handler");
    assert_eq!(
        parse(
            "dialect: lambda
runtime: python3.12"
        )
        .unwrap()
        .handler,
        "index.handler"
    );
    assert_mentions(
        &error("dialect: aws"),
        &["field 'dialect'", "functiongraph, lambda"],
    );
}

#[test]
fn handler_shape_for_builtin_runtimes() {
    parse("runtime: Python3.9\nhandler: pkg.mod.handler").unwrap();
    parse("runtime: Python3.9\nhandler: src/index.handler").unwrap();
    parse("runtime: Node.js18.15\nhandler: src/index.handlers.main").unwrap();
    for (rt, bad) in [
        ("Python3.9", "index"),
        ("Python3.9", ".handler"),
        ("Python3.9", "index."),
        ("Python3.9", "a..b.handler"),
        ("Python3.9", "/abs.handler"),
        ("Node.js18.15", "index"),
        ("Node.js18.15", "../up/index.handler"),
        ("Node.js18.15", "/abs/index.handler"),
    ] {
        let m = error(&format!("runtime: {rt}\nhandler: {bad}"));
        assert_mentions(&m, &[FILE, "field 'handler'", "file.function"]);
    }
    assert_mentions(&error("handler: \"\""), &["field 'handler'", "empty"]);
    // Bootstrap runtimes pass the handler on untouched.
    assert_eq!(
        parse("handler: anything goes").unwrap().handler,
        "anything goes"
    );
}

#[test]
fn initializer_must_share_the_handler_file() {
    let m = error("runtime: Python3.9\nhandler: index.handler\ninitializer_handler: init.setup");
    assert_mentions(
        &m,
        &["field 'initializer_handler'", "same file", "index", "init"],
    );
    let m = error("runtime: Python3.9\ninitializer_handler: index");
    assert_mentions(&m, &["field 'initializer_handler'", "file.function"]);
    let c = parse("runtime: Node.js18.15\ninitializer_handler: index.init").unwrap();
    assert_eq!(c.initializer_handler.as_deref(), Some("index.init"));
}

#[test]
fn user_data_rules() {
    let m = error("user_data:\n  PORT: 8080\n");
    assert_mentions(
        &m,
        &[
            FILE,
            "field 'user_data'",
            "PORT",
            "a number",
            "quote it",
            "PORT: \"8080\"",
        ],
    );
    assert_mentions(
        &error("user_data: {DEBUG: true}"),
        &["DEBUG", "a boolean", "quote it"],
    );
    assert_mentions(&error("user_data: {EMPTY: }"), &["EMPTY", "no value"]);
    assert_mentions(&error("user_data: {A: [1]}"), &["'A'", "must be a string"]);
    assert_mentions(
        &error("user_data: {\"my-var\": x}"),
        &["field 'user_data'", "'my-var'", "^[A-Za-z_][A-Za-z0-9_]*$"],
    );
    assert_mentions(&error("user_data: {1ABC: x}"), &["'1ABC'"]);
    assert_mentions(&error("user_data: {1: x}"), &["name a number (1)"]);

    let ok = format!("user_data: {{A: \"{}\"}}", "v".repeat(4095));
    assert_eq!(parse(&ok).unwrap().user_data["A"].len(), 4095);
    let too_big = format!("user_data: {{AB: \"{}\"}}", "v".repeat(4095));
    assert_mentions(&error(&too_big), &["field 'user_data'", "4097", "4096"]);
}

#[test]
fn yaml_merge_keys_are_applied() {
    let c = parse("base: &b {timeout: 10}\n").map(|_| ()).unwrap_err();
    assert_mentions(&c.to_string(), &["unknown field 'base'"]);
    let c = parse("<<: {timeout: 10}\nmemory_size: 256\n").unwrap();
    assert_eq!((c.timeout, c.memory_size), (10, 256));
}

#[test]
fn dialect_serde_names() {
    assert_eq!(
        serde_json::to_string(&Dialect::FunctionGraph).unwrap(),
        "\"functiongraph\""
    );
    assert_eq!(
        serde_json::from_str::<Dialect>("\"lambda\"").unwrap(),
        Dialect::Lambda
    );
}

#[test]
fn network_defaults_to_isolated_and_accepts_host() {
    assert_eq!(parse("").unwrap().network, crate::Network::Isolated);
    assert_eq!(
        parse("network: host").unwrap().network,
        crate::Network::Host
    );
    assert_eq!(
        parse("network: isolated").unwrap().network,
        crate::Network::Isolated
    );
    assert_mentions(&error("network: bridge"), &["network", "isolated", "host"]);
}

#[test]
fn freeze_is_on_for_lambda_off_for_functiongraph_and_validated() {
    assert!(parse("dialect: lambda").unwrap().freeze);
    assert!(!parse("dialect: lambda\nfreeze: false").unwrap().freeze);
    assert!(parse("dialect: lambda\nfreeze: true").unwrap().freeze);
    assert!(!parse("").unwrap().freeze);
    assert!(!parse("freeze: false").unwrap().freeze);
    assert_mentions(
        &error("freeze: true"),
        &["freeze", "only Lambda packages", "dialect: lambda"],
    );
    assert_mentions(
        &error("dialect: lambda\nfreeze: \"no\""),
        &["freeze", "expected true or false", "no"],
    );
}
