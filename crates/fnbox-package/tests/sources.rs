//! `layers:` (Lambda) and `dependencies:` (FunctionGraph): merging, extension discovery and
//! the rules, on real directories and zips built at test time.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use fnbox_package::load;
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::ZipWriter;

const BOOTSTRAP: &str = "#!/bin/sh\necho hi\n";

fn write_files(dir: &Path, files: &[(&str, &str, u32)]) {
    for (path, content, mode) in files {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
    }
}

fn write_zip(path: &Path, files: &[(&str, &str, u32)]) {
    let mut zip = ZipWriter::new(fs::File::create(path).unwrap());
    for (name, content, mode) in files {
        zip.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
            .unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

/// `tmp/fn` with `function.yaml` = `config` and a bootstrap.
fn package(config: &str) -> (TempDir, PathBuf) {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("fn");
    write_files(
        &dir,
        &[
            ("function.yaml", config, 0o644),
            ("bootstrap", BOOTSTRAP, 0o755),
        ],
    );
    (tmp, dir)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn err(dir: &Path) -> String {
    match load(dir) {
        Ok(p) => panic!("loaded: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn lambda_layers_merge_in_order_and_bring_extensions_at_their_opt_path() {
    let (_tmp, dir) = package("dialect: lambda\nlayers: [layers/one, layers/two.zip]\n");
    write_files(
        &dir,
        &[
            (
                "layers/one/extensions/ext-a",
                "#!/bin/sh\nexec /opt/ext-a/run\n",
                0o755,
            ),
            ("layers/one/ext-a/run", "one", 0o755),
            ("layers/one/shared.txt", "from one", 0o644),
            ("extensions/own", "#!/bin/sh\n", 0o755),
        ],
    );
    write_zip(
        &dir.join("layers/two.zip"),
        &[
            (
                "extensions/ext-b",
                "#!/bin/sh\nexec /opt/ext-b/run\n",
                0o755,
            ),
            ("ext-b/run", "two", 0o755),
            ("shared.txt", "from two", 0o644),
        ],
    );
    let pkg = load(&dir).unwrap();
    let opt = pkg.opt_dir.clone().expect("opt_dir with layers");
    assert_eq!(
        read(&opt.join("shared.txt")),
        "from two",
        "later layer wins"
    );
    assert_eq!(read(&opt.join("ext-a/run")), "one");
    assert_eq!(read(&opt.join("ext-b/run")), "two");
    let mode = fs::metadata(opt.join("extensions/ext-b"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "zip permission bits kept");
    let exts: Vec<(String, PathBuf)> = pkg
        .extensions
        .iter()
        .map(|e| (e.name.clone(), e.path.clone()))
        .collect();
    assert_eq!(
        exts,
        vec![
            ("ext-a".into(), PathBuf::from("/opt/extensions/ext-a")),
            ("ext-b".into(), PathBuf::from("/opt/extensions/ext-b")),
            ("own".into(), pkg.root.join("extensions/own")),
        ]
    );
    // The staged directory lives as long as the package.
    drop(pkg);
    assert!(!opt.exists(), "staged /opt removed with the package");
}

#[test]
fn a_package_without_layers_has_no_opt_dir() {
    let (_tmp, dir) = package("dialect: lambda\n");
    assert!(load(&dir).unwrap().opt_dir.is_none());
}

#[test]
fn layers_of_a_zip_package_are_found_next_to_the_zip() {
    let tmp = TempDir::new().unwrap();
    write_files(tmp.path(), &[("ext/extensions/e1", "#!/bin/sh\n", 0o755)]);
    write_zip(
        &tmp.path().join("fn.zip"),
        &[
            ("function.yaml", "dialect: lambda\nlayers: [ext]\n", 0o644),
            ("bootstrap", BOOTSTRAP, 0o755),
        ],
    );
    let pkg = load(&tmp.path().join("fn.zip")).unwrap();
    assert_eq!(pkg.extensions[0].path, PathBuf::from("/opt/extensions/e1"));
}

#[test]
fn an_extension_name_in_the_package_and_a_layer_is_an_error_naming_both() {
    let (_tmp, dir) = package("dialect: lambda\nlayers: [l1]\n");
    write_files(
        &dir,
        &[
            ("l1/extensions/dup", "#!/bin/sh\n", 0o755),
            ("extensions/dup", "#!/bin/sh\n", 0o755),
        ],
    );
    let e = err(&dir);
    assert!(
        e.contains("extensions/dup") && e.contains("/opt/extensions/dup") && e.contains("unique"),
        "{e}"
    );
}

#[test]
fn layer_rules_name_the_layer_and_the_rule() {
    let (_tmp, dir) = package("dialect: lambda\nlayers: [missing.zip]\n");
    let e = err(&dir);
    assert!(
        e.contains("field 'layers'")
            && e.contains("layer 'missing.zip'")
            && e.contains("does not exist"),
        "{e}"
    );

    let (_tmp, dir) = package("dialect: lambda\nlayers: [notes.txt]\n");
    write_files(&dir, &[("notes.txt", "x", 0o644)]);
    let e = err(&dir);
    assert!(
        e.contains("layer 'notes.txt'") && e.contains("neither a directory nor a .zip"),
        "{e}"
    );

    let (_tmp, dir) = package("dialect: lambda\nlayers: [a, b, c, d, e, f]\n");
    let e = err(&dir);
    assert!(
        e.contains("at most 5") && e.contains("Lambda's limit of 5 layers"),
        "{e}"
    );

    let (_tmp, dir) = package("layers: [a]\n");
    let e = err(&dir);
    assert!(
        e.contains("field 'layers'")
            && e.contains("dialect: lambda")
            && e.contains("dependencies:"),
        "{e}"
    );

    let (_tmp, dir) = package("dialect: lambda\ndependencies: [a]\n");
    let e = err(&dir);
    assert!(
        e.contains("field 'dependencies'") && e.contains("layers:"),
        "{e}"
    );

    let (_tmp, dir) = package("dialect: lambda\nlayers: l1\n");
    assert!(err(&dir).contains("expected a list of paths"));

    let (tmp, dir) = package("dialect: lambda\nlayers: [l1]\n");
    write_files(tmp.path(), &[("secret", "s", 0o644)]);
    fs::create_dir_all(dir.join("l1")).unwrap();
    symlink(tmp.path().join("secret"), dir.join("l1/leak")).unwrap();
    let e = err(&dir);
    assert!(e.contains("layer 'l1'") && e.contains("outside it"), "{e}");
}

#[test]
fn a_zip_layer_gets_the_archive_checks() {
    let (_tmp, dir) = package("dialect: lambda\nlayers: [evil.zip]\n");
    write_zip(&dir.join("evil.zip"), &[("../escape", "x", 0o644)]);
    let e = err(&dir);
    assert!(e.contains("evil.zip") && e.contains("../escape"), "{e}");
}

#[test]
fn functiongraph_dependencies_merge_with_the_code_and_win_on_a_clash() {
    let (_tmp, dir) = package("dependencies: [deps/ext.zip, deps/lib]\n");
    write_files(
        &dir,
        &[
            ("lib/util.py", "code", 0o644),
            ("deps/lib/lib/util.py", "dependency", 0o644),
        ],
    );
    write_zip(
        &dir.join("deps/ext.zip"),
        &[("extension/extensionDemo.sh", "echo ext\n", 0o644)],
    );
    let pkg = load(&dir).unwrap();
    assert_ne!(pkg.root, fs::canonicalize(&dir).unwrap(), "a staged root");
    assert!(pkg.opt_dir.is_none());
    assert_eq!(read(&pkg.root.join("lib/util.py")), "dependency");
    assert_eq!(read(&pkg.root.join("bootstrap")), BOOTSTRAP);
    assert_eq!(pkg.extensions.len(), 1);
    assert_eq!(pkg.extensions[0].name, "extensionDemo.sh");
    assert_eq!(
        pkg.extensions[0].path,
        pkg.root.join("extension/extensionDemo.sh")
    );
    // The user's directory is untouched.
    assert_eq!(read(&dir.join("lib/util.py")), "code");
}

#[test]
fn dependency_rules_name_the_dependency_and_the_rule() {
    let list: Vec<String> = (0..21).map(|i| format!("d{i}")).collect();
    let (_tmp, dir) = package(&format!("dependencies: [{}]\n", list.join(", ")));
    let e = err(&dir);
    assert!(
        e.contains("at most 20") && e.contains("20 dependencies per function"),
        "{e}"
    );

    let (_tmp, dir) = package("dependencies: [many]\n");
    let many = dir.join("many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..=30_000 {
        fs::File::create(many.join(i.to_string())).unwrap();
    }
    let e = err(&dir);
    assert!(
        e.contains("dependency 'many'") && e.contains("30000 files per dependency"),
        "{e}"
    );
}
