//! `load()` on real directories and zips built at test time. Assertions are on the message the
//! user would see.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use fnbox_package::{load, Dialect, Package, Runtime};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

const BOOTSTRAP: &str = "#!/bin/sh\necho hi\n";

/// Writes `files` (path, content, mode) under `dir`.
fn write_files(dir: &Path, files: &[(&str, &str, u32)]) {
    for (path, content, mode) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// A temp dir holding a package directory `name` with `files`.
fn package_dir(name: &str, files: &[(&str, &str, u32)]) -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join(name);
    fs::create_dir(&dir).unwrap();
    write_files(&dir, files);
    (tmp, dir)
}

enum Entry<'a> {
    File(&'a str, &'a str, u32),
    Dir(&'a str),
    Link(&'a str, &'a str),
}

/// A temp dir holding `name` (a zip of `entries`).
fn zip_file(name: &str, entries: &[Entry<'_>]) -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let path = tmp.path().join(name);
    let mut zip = ZipWriter::new(fs::File::create(&path).unwrap());
    for entry in entries {
        match entry {
            Entry::File(name, content, mode) => {
                let options = SimpleFileOptions::default().unix_permissions(*mode);
                zip.start_file(*name, options).unwrap();
                zip.write_all(content.as_bytes()).unwrap();
            }
            Entry::Dir(name) => zip
                .add_directory(*name, SimpleFileOptions::default())
                .unwrap(),
            Entry::Link(name, target) => zip
                .add_symlink(*name, *target, SimpleFileOptions::default())
                .unwrap(),
        }
    }
    zip.finish().unwrap();
    (tmp, path)
}

fn load_err(path: &Path) -> String {
    match load(path) {
        Ok(p) => panic!("expected an error for {}, got {p:?}", path.display()),
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

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------------
// Directories

#[test]
fn good_directory_with_defaults() {
    let (_tmp, dir) = package_dir("hello", &[("bootstrap", BOOTSTRAP, 0o755)]);
    let p = load(&dir).unwrap();
    assert!(p.root.is_absolute());
    assert_eq!(p.root, fs::canonicalize(&dir).unwrap());
    assert_eq!(p.config.func_name, "hello");
    assert_eq!(p.config.runtime, Runtime::Custom);
    assert!(p.config_file.is_none());
    assert_eq!(p.bootstrap(), p.root.join("bootstrap"));
    assert!(p.extensions.is_empty());
}

#[test]
fn good_directory_with_yaml() {
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            ("function.yaml", "func_name: greeter\nruntime: Python3.9\nhandler: app.main\ninitializer_handler: app.init\n", 0o644),
            ("app.py", "def main(e, c): return e\n", 0o644),
        ],
    );
    let p = load(&dir).unwrap();
    assert_eq!(p.config.func_name, "greeter");
    assert_eq!(p.config_file, Some(p.root.join("function.yaml")));
}

#[test]
fn config_file_errors_name_the_path() {
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            ("function.yaml", "memory_size: 100\n", 0o644),
            ("bootstrap", BOOTSTRAP, 0o755),
        ],
    );
    let m = load_err(&dir);
    assert_mentions(
        &m,
        &["hello/function.yaml: field 'memory_size'", "100", "128"],
    );
}

#[test]
fn json_and_yml_configs() {
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            ("function.json", "{\"memory_size\": 256}", 0o644),
            ("bootstrap", BOOTSTRAP, 0o755),
        ],
    );
    assert_eq!(load(&dir).unwrap().config.memory_size, 256);
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            ("function.yml", "memory_size: 512", 0o644),
            ("bootstrap", BOOTSTRAP, 0o755),
        ],
    );
    assert_eq!(load(&dir).unwrap().config.memory_size, 512);
}

#[test]
fn both_yaml_and_json_is_an_error() {
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            ("function.yaml", "timeout: 3", 0o644),
            ("function.json", "{}", 0o644),
            ("bootstrap", BOOTSTRAP, 0o755),
        ],
    );
    let m = load_err(&dir);
    assert_mentions(&m, &["function.yaml", "function.json", "only one"]);
}

#[test]
fn missing_bootstrap() {
    let (_tmp, dir) = package_dir("hello", &[("function.yaml", "runtime: http", 0o644)]);
    let m = load_err(&dir);
    assert_mentions(&m, &["hello/bootstrap is missing", "http"]);
}

#[test]
fn non_executable_bootstrap() {
    // FunctionGraph runs `/bin/bash bootstrap`: the executable bit is not needed there.
    let (_tmp, dir) = package_dir("hello", &[("bootstrap", BOOTSTRAP, 0o644)]);
    load(&dir).expect("a FunctionGraph bootstrap without the executable bit loads");
    // Lambda executes it.
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            ("bootstrap", BOOTSTRAP, 0o644),
            ("function.yaml", "dialect: lambda\n", 0o644),
        ],
    );
    let m = load_err(&dir);
    assert_mentions(
        &m,
        &[
            "hello/bootstrap is not executable",
            "chmod +x",
            "hello/bootstrap",
        ],
    );
}

#[test]
fn bootstrap_must_be_a_file_inside_the_root() {
    let (_tmp, dir) = package_dir("hello", &[]);
    fs::create_dir(dir.join("bootstrap")).unwrap();
    assert_mentions(&load_err(&dir), &["bootstrap is not a regular file"]);

    let (tmp, dir) = package_dir("hello", &[]);
    write_files(tmp.path(), &[("outside.sh", BOOTSTRAP, 0o755)]);
    symlink("../outside.sh", dir.join("bootstrap")).unwrap();
    assert_mentions(
        &load_err(&dir),
        &["bootstrap is a symlink", "outside the code root"],
    );

    let (_tmp, dir) = package_dir("hello", &[("bin/real", BOOTSTRAP, 0o755)]);
    symlink("bin/real", dir.join("bootstrap")).unwrap();
    load(&dir).unwrap();
}

#[test]
fn handler_file_must_exist() {
    let (_tmp, dir) = package_dir(
        "hello",
        &[(
            "function.yaml",
            "runtime: Python3.9\nhandler: main.handler\n",
            0o644,
        )],
    );
    let m = load_err(&dir);
    assert_mentions(
        &m,
        &[
            "hello/function.yaml: field 'handler'",
            "hello/main.py",
            "does not exist",
        ],
    );

    let (_tmp, dir) = package_dir(
        "hello",
        &[("function.yaml", "runtime: Node.js18.15\n", 0o644)],
    );
    assert_mentions(
        &load_err(&dir),
        &["field 'handler'", "hello/index.js (or .mjs, .cjs)"],
    );

    let (_tmp, dir) = package_dir(
        "hello",
        &[
            (
                "function.yaml",
                "runtime: Node.js18.15\nhandler: src/app.handler\n",
                0o644,
            ),
            ("src/app.mjs", "", 0o644),
        ],
    );
    load(&dir).unwrap();
}

#[test]
fn invalid_directory_name_without_config() {
    let (_tmp, dir) = package_dir("my function", &[("bootstrap", BOOTSTRAP, 0o755)]);
    assert_mentions(
        &load_err(&dir),
        &["'my function'", "func_name", "function.yaml"],
    );
}

#[test]
fn nonexistent_and_non_package_paths() {
    let tmp = TempDir::new().unwrap();
    let missing = tmp.path().join("nope");
    assert_mentions(&load_err(&missing), &["nope", "no such file or directory"]);
    let txt = tmp.path().join("fn.txt");
    fs::write(&txt, "x").unwrap();
    assert_mentions(
        &load_err(&txt),
        &["fn.txt", "not a function package", ".zip"],
    );
    let bad_zip = tmp.path().join("fn.zip");
    fs::write(&bad_zip, "not a zip").unwrap();
    assert_mentions(
        &load_err(&bad_zip),
        &["fn.zip", "not a readable zip archive"],
    );
}

// ---------------------------------------------------------------------------------------------
// Extensions

#[test]
fn functiongraph_extensions() {
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            ("bootstrap", BOOTSTRAP, 0o755),
            ("extension/extensionB.sh", "", 0o644),
            ("extension/extensionA.sh", "", 0o755),
            ("extension/extension.sh", "", 0o644),
            ("extension/helper.sh", "", 0o755),
            ("extension/extensionC.py", "", 0o755),
            ("extensions/ignored", "", 0o755),
        ],
    );
    fs::create_dir(dir.join("extension/extensionDir.sh")).unwrap();
    let p = load(&dir).unwrap();
    let names: Vec<&str> = p.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["extension.sh", "extensionA.sh", "extensionB.sh"]);
    assert_eq!(p.extensions[1].path, p.root.join("extension/extensionA.sh"));
    assert!(p.extensions.iter().all(|e| e.path.is_absolute()));
}

#[test]
fn lambda_extensions() {
    let (_tmp, dir) = package_dir(
        "hello",
        &[
            (
                "function.yaml",
                "dialect: lambda\nruntime: provided.al2023\n",
                0o644,
            ),
            ("bootstrap", BOOTSTRAP, 0o755),
            ("extensions/telemetry-ext", "", 0o755),
            ("extensions/a-ext", "", 0o700),
            ("extensions/readme.txt", "", 0o644),
            ("extensions/sub/nested", "", 0o755),
            ("extension/extensionA.sh", "", 0o755),
        ],
    );
    let p = load(&dir).unwrap();
    assert_eq!(p.config.dialect, Dialect::Lambda);
    let names: Vec<&str> = p.extensions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a-ext", "telemetry-ext"]);
}

#[test]
fn more_than_ten_extensions() {
    let (_tmp, dir) = package_dir("hello", &[("bootstrap", BOOTSTRAP, 0o755)]);
    for i in 0..11 {
        write_files(
            &dir,
            &[(&format!("extension/extension{i:02}.sh"), "", 0o644)],
        );
    }
    let m = load_err(&dir);
    assert_mentions(
        &m,
        &[
            "hello/extension holds 11 extensions",
            "at most 10",
            "extension10.sh",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Zips

#[test]
fn good_zip_keeps_exec_bits_and_lives_with_the_package() {
    let (_tmp, zip) = zip_file(
        "my-fn.zip",
        &[
            Entry::File("bootstrap", BOOTSTRAP, 0o755),
            Entry::File("data/config.txt", "x", 0o640),
            Entry::Dir("empty/"),
            Entry::File("extension/extensionDemo.sh", "", 0o644),
            Entry::Link("current", "data/config.txt"),
        ],
    );
    let p: Package = load(&zip).unwrap();
    assert_eq!(p.config.func_name, "my-fn");
    assert!(p.root.is_absolute());
    assert_eq!(mode(&p.bootstrap()), 0o755);
    assert_eq!(mode(&p.root.join("data/config.txt")), 0o640);
    assert!(p.root.join("empty").is_dir());
    assert_eq!(fs::read_to_string(p.root.join("current")).unwrap(), "x");
    assert!(fs::symlink_metadata(p.root.join("current"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(p.extensions.len(), 1);
    let root = p.root.clone();
    drop(p);
    assert!(!root.exists(), "extraction dir removed with the package");
}

#[test]
fn zip_non_executable_bootstrap() {
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::File("bootstrap", BOOTSTRAP, 0o644),
            Entry::File("function.yaml", "dialect: lambda\n", 0o644),
        ],
    );
    assert_mentions(
        &load_err(&zip),
        &[
            "fn.zip/bootstrap is not executable",
            "chmod +x bootstrap before zipping",
        ],
    );
}

#[test]
fn zip_config_errors_name_the_archive() {
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::File("function.yaml", "timeout: 1000\n", 0o644),
            Entry::File("bootstrap", BOOTSTRAP, 0o755),
        ],
    );
    assert_mentions(
        &load_err(&zip),
        &["fn.zip/function.yaml: field 'timeout'", "1000", "3 to 900"],
    );
}

#[test]
fn zip_with_single_top_directory() {
    let (_tmp, zip) = zip_file(
        "pkg.zip",
        &[
            Entry::Dir("fn/"),
            Entry::File("fn/function.yaml", "timeout: 10\n", 0o644),
            Entry::File("fn/bootstrap", BOOTSTRAP, 0o755),
            Entry::Link("fn/boot", "bootstrap"),
        ],
    );
    let p = load(&zip).unwrap();
    assert_eq!(p.root.file_name().unwrap(), "fn");
    assert_eq!(p.config.timeout, 10);
    assert_eq!(p.config.func_name, "pkg");
    assert!(p.bootstrap().is_file());

    // Without the directory entry, and the error path shows the directory.
    let (_tmp, zip) = zip_file(
        "pkg.zip",
        &[
            Entry::File("fn/bootstrap", BOOTSTRAP, 0o600),
            Entry::File("fn/function.yaml", "dialect: lambda\n", 0o644),
        ],
    );
    assert_mentions(&load_err(&zip), &["pkg.zip/fn/bootstrap is not executable"]);

    // Two top-level entries: the archive root is the code root.
    let (_tmp, zip) = zip_file(
        "pkg.zip",
        &[
            Entry::File("fn/bootstrap", BOOTSTRAP, 0o755),
            Entry::File("README", "", 0o644),
        ],
    );
    // No config file, no flags, no bootstrap: the message says what to give.
    assert_mentions(
        &load_err(&zip),
        &["pkg.zip has no function.yaml", "--runtime, --handler"],
    );
}

/// A deploy zip as the console takes it (code only) runs with its configuration from flags;
/// flags next to a config file are refused.
#[test]
fn config_flags_configure_a_package_without_config_file() {
    let (_tmp, zip) = zip_file(
        "sample.zip",
        &[Entry::File(
            "index.py",
            "def handler(event, context):\n    return 1\n",
            0o644,
        )],
    );
    let flags = fnbox_package::ConfigFlags {
        runtime: Some("Python3.9".into()),
        handler: Some("index.handler".into()),
        memory: Some(256),
        env: vec![("RUNTIME_LOG_LEVEL".into(), "DEBUG".into())],
        ..Default::default()
    };
    let p = fnbox_package::load_with(&zip, &flags).unwrap();
    assert_eq!(p.config.func_name, "sample");
    assert_eq!(p.config.runtime_name, "Python3.9");
    assert_eq!(p.config.memory_size, 256);
    assert!(p.config_file.is_none());
    assert!(
        p.notes[0].contains("configuration comes from the command line"),
        "{:?}",
        p.notes
    );

    // A handler file the flags name must exist, as with function.yaml.
    let wrong = fnbox_package::ConfigFlags {
        handler: Some("main.handler".into()),
        ..flags.clone()
    };
    let e = fnbox_package::load_with(&zip, &wrong)
        .unwrap_err()
        .to_string();
    assert!(e.contains("main.py"), "{e}");

    let (_tmp2, with_yaml) = zip_file(
        "sample.zip",
        &[
            Entry::File("index.py", "", 0o644),
            Entry::File("function.yaml", "runtime: Python3.9\n", 0o644),
        ],
    );
    let e = fnbox_package::load_with(&with_yaml, &flags)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sample.zip/function.yaml exists: --runtime")
            && e.contains("change function.yaml"),
        "{e}"
    );
}

#[test]
fn zip_slip_is_rejected() {
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::File("bootstrap", BOOTSTRAP, 0o755),
            Entry::File("../evil", "x", 0o644),
        ],
    );
    let m = load_err(&zip);
    assert_mentions(&m, &["fn.zip: entry '../evil'", "escapes"]);
    assert!(!zip
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("evil")
        .exists());

    let (_tmp, zip) = zip_file("fn.zip", &[Entry::File("a/../../evil", "x", 0o644)]);
    assert_mentions(&load_err(&zip), &["entry 'a/../../evil'", "escapes"]);
}

#[test]
fn absolute_entry_is_rejected() {
    let (_tmp, zip) = zip_file("fn.zip", &[Entry::File("/etc/x", "x", 0o644)]);
    assert_mentions(&load_err(&zip), &["fn.zip: entry '/etc/x'", "absolute"]);
}

#[test]
fn escaping_symlinks_are_rejected() {
    for (name, target) in [
        ("link", "/etc/passwd"),
        ("link", "../outside"),
        ("a/link", "../../x"),
    ] {
        let (_tmp, zip) = zip_file(
            "fn.zip",
            &[
                Entry::File("bootstrap", BOOTSTRAP, 0o755),
                Entry::Link(name, target),
            ],
        );
        let m = load_err(&zip);
        assert_mentions(&m, &[&format!("fn.zip: entry '{name}'"), "symlink", target]);
    }
    // Lexically inside, but through another link it leaves the root.
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::File("bootstrap", BOOTSTRAP, 0o755),
            Entry::Dir("d/"),
            Entry::Link("d/up", ".."),
            Entry::Link("sneaky", "d/up/.."),
        ],
    );
    assert_mentions(&load_err(&zip), &["entry 'sneaky'", "outside"]);
    // Writing through a symlink entry.
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::Link("dir", "sub"),
            Entry::File("dir/file", "x", 0o644),
        ],
    );
    assert_mentions(
        &load_err(&zip),
        &["entry 'dir/file'", "inside entry 'dir', which is a symlink"],
    );
}

#[test]
fn duplicate_entries_are_rejected() {
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::File("bootstrap", BOOTSTRAP, 0o755),
            Entry::File("./bootstrap", "x", 0o755),
        ],
    );
    assert_mentions(
        &load_err(&zip),
        &[
            "fn.zip: entry './bootstrap'",
            "same path as entry 'bootstrap'",
        ],
    );

    // Exact duplicates (the zip writer refuses them, so patch the second name).
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::File("bootstrap", BOOTSTRAP, 0o755),
            Entry::File("bootstrax", "x", 0o755),
        ],
    );
    let mut bytes = fs::read(&zip).unwrap();
    let mut patched = 0;
    for i in 0..bytes.len() - 9 {
        if &bytes[i..i + 9] == b"bootstrax" {
            bytes[i + 8] = b'p';
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "local and central header");
    fs::write(&zip, bytes).unwrap();
    assert_mentions(
        &load_err(&zip),
        &["fn.zip: entry 'bootstrap'", "more than once"],
    );
}

#[test]
fn backup_files_and_macos_forks_are_skipped() {
    let (_tmp, zip) = zip_file(
        "fn.zip",
        &[
            Entry::File("bootstrap", BOOTSTRAP, 0o755),
            Entry::File("bootstrap~", "old", 0o755),
            Entry::File("__MACOSX/._bootstrap", "", 0o644),
        ],
    );
    let p = load(&zip).unwrap();
    assert!(!p.root.join("bootstrap~").exists());
    assert!(!p.root.join("__MACOSX").exists());
}

// Size and entry-count limits (including headers that understate sizes) are tested with small
// limits in `src/archive.rs`.
