//! Safe extraction of a `.zip` package into a temporary directory.
//!
//! Design: the archive is checked completely *before* anything is written (plan, then extract),
//! so a rejected archive leaves nothing behind and every message can name the offending entry:
//!
//! 1. scan the central directory ourselves to count entries and find exact duplicate names (the
//!    `zip` crate silently keeps only the last of two entries with the same name);
//! 2. normalize every name (`\` is a separator, `.`/`..` are resolved lexically) and reject
//!    absolute names, names escaping the target, entries nested under a file or symlink entry,
//!    and duplicates after normalization;
//! 3. resolve every symlink target inside a model of the archive (following the archive's other
//!    symlinks, as the kernel would) and reject targets that are absolute, leave the code root or
//!    loop;
//! 4. extract: directories and files first (files with `create_new`, so nothing is written
//!    through a symlink), symlinks last; actual decompressed bytes are counted against the size
//!    limit, so headers that understate sizes do not help.
//!
//! Unix permission bits are kept (minus setuid/setgid/sticky; the owner always keeps read access).
//! `__MACOSX/` resource forks and editor backups (names ending in `~`) are skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use zip::ZipArchive;

use crate::PackageError;

/// Most entries an archive may hold.
pub const MAX_ENTRIES: usize = 30_000;
/// Most bytes an archive may hold once extracted (1500 MB).
pub const MAX_UNCOMPRESSED_BYTES: u64 = 1500 * 1024 * 1024;
/// Largest expansion of one entry (uncompressed ÷ compressed size) once it is over
/// [`RATIO_FLOOR`]: code and assets compress 2–20×; a zip bomb expands thousands of times.
pub const MAX_RATIO: u64 = 200;
/// Entries up to this uncompressed size are not checked for their ratio (tiny files of one
/// repeated byte compress absurdly well and harm nobody).
const RATIO_FLOOR: u64 = 1024 * 1024;
/// Longest symlink target accepted, in bytes.
const MAX_LINK_TARGET: u64 = 4096;
/// Most symlinks followed while resolving one target (Linux's own limit).
const MAX_LINK_HOPS: usize = 40;

/// An extracted archive.
#[derive(Debug)]
pub(crate) struct Extracted {
    /// Owns the extraction directory; dropping it removes the files.
    pub dir: TempDir,
    /// The code root inside `dir` (canonical): `dir` itself, or its single top-level directory.
    pub root: PathBuf,
    /// The root as shown to the user: `fn.zip` or `fn.zip/fn`.
    pub shown_root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink(String),
}

/// One entry that will be extracted.
#[derive(Debug)]
struct Planned {
    index: usize,
    /// The name as stored, for messages.
    name: String,
    /// Normalized path components (never empty, never `.` or `..`).
    path: Vec<String>,
    kind: Kind,
    mode: Option<u32>,
}

/// Size limits of an archive (a struct so tests can use small ones).
#[derive(Debug, Clone, Copy)]
struct Limits {
    entries: usize,
    bytes: u64,
    ratio: u64,
    ratio_floor: u64,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        entries: MAX_ENTRIES,
        bytes: MAX_UNCOMPRESSED_BYTES,
        ratio: MAX_RATIO,
        ratio_floor: RATIO_FLOOR,
    };

    fn megabytes(&self) -> String {
        if self.bytes >= 1024 * 1024 {
            format!("{} MB", self.bytes / (1024 * 1024))
        } else {
            format!("{} bytes", self.bytes)
        }
    }
}

/// Extracts `zip_path` (the path as the user gave it) into a new temporary directory.
pub(crate) fn extract(zip_path: &Path) -> Result<Extracted, PackageError> {
    extract_with(zip_path, Limits::DEFAULT, true)
}

/// Extracts `zip_path` as it is stored, without making a single top-level directory the root:
/// layers and dependencies are unpacked over `/opt` or the code directory exactly as zipped.
pub(crate) fn extract_verbatim(zip_path: &Path) -> Result<Extracted, PackageError> {
    extract_with(zip_path, Limits::DEFAULT, false)
}

fn extract_with(
    zip_path: &Path,
    limits: Limits,
    strip_top: bool,
) -> Result<Extracted, PackageError> {
    let zip_err = |message: String| PackageError::Zip {
        zip: zip_path.to_owned(),
        message,
    };
    let entry_err = |entry: &str, message: String| PackageError::ZipEntry {
        zip: zip_path.to_owned(),
        entry: entry.to_owned(),
        message,
    };

    let file = File::open(zip_path).map_err(|e| PackageError::io(zip_path, "cannot open", e))?;
    let mut archive = ZipArchive::new(BufReader::new(file))
        .map_err(|e| zip_err(format!("not a readable zip archive: {e}")))?;

    // 1. Raw central directory: entry count and exact duplicates.
    match scan_central_directory(zip_path, archive.central_directory_start(), limits.entries) {
        Ok(names) => {
            if names.len() > limits.entries {
                return Err(zip_err(format!(
                    "has more than {0} entries; at most {0} are allowed",
                    limits.entries
                )));
            }
            let mut seen = HashSet::new();
            for name in &names {
                if !seen.insert(name.as_slice()) {
                    return Err(entry_err(
                        &String::from_utf8_lossy(name),
                        "appears more than once in the archive".to_owned(),
                    ));
                }
            }
        }
        Err(e) => {
            tracing::debug!(zip = %zip_path.display(), error = %e, "central directory scan skipped")
        }
    }
    if archive.len() > limits.entries {
        return Err(zip_err(format!(
            "has {} entries; at most {} are allowed",
            archive.len(),
            limits.entries
        )));
    }

    // 2. Plan: names, kinds, declared sizes.
    let mut planned: Vec<Planned> = Vec::new();
    let mut by_path: HashMap<Vec<String>, usize> = HashMap::new();
    let mut declared: u64 = 0;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| zip_err(format!("cannot read entry #{index}: {e}")))?;
        let name = entry.name().to_owned();
        if entry.encrypted() {
            return Err(entry_err(
                &name,
                "is encrypted; fnbox cannot extract it".to_owned(),
            ));
        }
        let path = normalize(&name).map_err(|why| entry_err(&name, why))?;
        let is_symlink = entry.is_symlink();
        let is_dir = (entry.is_dir() || name.ends_with('\\')) && !is_symlink;
        let mode = entry.unix_mode();
        if !is_dir {
            let (size, compressed) = (entry.size(), entry.compressed_size().max(1));
            if size > limits.ratio_floor && size / compressed > limits.ratio {
                return Err(entry_err(
                    &name,
                    format!(
                        "expands {}× ({compressed} bytes compressed, {size} uncompressed); at \
                         most {}× is allowed for entries over {} bytes (a zip bomb?)",
                        size / compressed,
                        limits.ratio,
                        limits.ratio_floor
                    ),
                ));
            }
            declared = declared.saturating_add(size);
            if declared > limits.bytes {
                return Err(entry_err(
                    &name,
                    format!(
                        "brings the declared uncompressed size over the limit of {}",
                        limits.megabytes()
                    ),
                ));
            }
        }
        drop(entry);
        if path.is_empty() || skipped(&path, is_dir) {
            continue;
        }
        let kind = if is_symlink {
            Kind::Symlink(
                read_link_target(&mut archive, index).map_err(|why| entry_err(&name, why))?,
            )
        } else if is_dir {
            Kind::Dir
        } else {
            Kind::File
        };
        if let Some(&other) = by_path.get(&path) {
            let other: &Planned = &planned[other];
            if kind == Kind::Dir && other.kind == Kind::Dir {
                continue;
            }
            return Err(entry_err(
                &name,
                format!("is the same path as entry '{}'", other.name),
            ));
        }
        by_path.insert(path.clone(), planned.len());
        planned.push(Planned {
            index,
            name,
            path,
            kind,
            mode,
        });
    }

    // Nothing may live under a file or a symlink entry (it would be written through the link).
    for p in &planned {
        for len in 1..p.path.len() {
            if let Some(&parent) = by_path.get(&p.path[..len]) {
                let parent = &planned[parent];
                let what = match parent.kind {
                    Kind::Dir => continue,
                    Kind::File => "a file",
                    Kind::Symlink(_) => "a symlink",
                };
                return Err(entry_err(
                    &p.name,
                    format!("is inside entry '{}', which is {what}", parent.name),
                ));
            }
        }
    }

    // 3. Code root, then symlinks must resolve inside it.
    let base = if strip_top {
        single_top_dir(&planned)
    } else {
        None
    };
    let links: HashMap<&[String], &str> = planned
        .iter()
        .filter_map(|p| match &p.kind {
            Kind::Symlink(t) => Some((p.path.as_slice(), t.as_str())),
            _ => None,
        })
        .collect();
    for p in &planned {
        if let Kind::Symlink(target) = &p.kind {
            check_link(&links, &p.path, target, base.as_deref())
                .map_err(|why| entry_err(&p.name, why))?;
        }
    }

    // 4. Extract.
    let parent = crate::extraction_dir();
    let dir = fs::create_dir_all(&parent)
        .and_then(|()| {
            tempfile::Builder::new()
                .prefix("fnbox-pkg-")
                .permissions(fs::Permissions::from_mode(0o755))
                .tempdir_in(&parent)
        })
        .map_err(|e| PackageError::io(&parent, "cannot create an extraction directory", e))?;
    let io_err = |p: &Planned, e: io::Error| entry_err(&p.name, format!("cannot extract: {e}"));
    let mut written: u64 = 0;
    for p in planned.iter().filter(|p| p.kind == Kind::File) {
        let dest = dest_path(dir.path(), &p.path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err(p, e))?;
        }
        let mode = p.mode.map_or(0o644, |m| (m & 0o777) | 0o400);
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&dest)
            .map_err(|e| io_err(p, e))?;
        let mut reader = archive
            .by_index(p.index)
            .map_err(|e| entry_err(&p.name, format!("cannot read: {e}")))?;
        let budget = limits.bytes - written;
        let n =
            io::copy(&mut (&mut reader).take(budget + 1), &mut out).map_err(|e| io_err(p, e))?;
        if n > budget {
            return Err(entry_err(
                &p.name,
                format!(
                    "the archive holds more than {} once extracted (its headers understate the sizes)",
                    limits.megabytes()
                ),
            ));
        }
        written += n;
        drop(out);
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(|e| io_err(p, e))?;
    }
    for p in planned.iter().filter(|p| p.kind == Kind::Dir) {
        let dest = dest_path(dir.path(), &p.path);
        fs::create_dir_all(&dest).map_err(|e| io_err(p, e))?;
        let mode = p.mode.map_or(0o755, |m| (m & 0o777) | 0o700);
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(|e| io_err(p, e))?;
    }
    for p in &planned {
        let Kind::Symlink(target) = &p.kind else {
            continue;
        };
        let dest = dest_path(dir.path(), &p.path);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err(p, e))?;
        }
        symlink(target, &dest).map_err(|e| io_err(p, e))?;
    }

    let mut root = dir.path().to_owned();
    let mut shown_root = zip_path.to_owned();
    if let Some(top) = &base {
        root.push(top);
        shown_root.push(top);
    }
    let root = fs::canonicalize(&root).map_err(|e| PackageError::io(&root, "cannot resolve", e))?;
    Ok(Extracted {
        dir,
        root,
        shown_root,
    })
}

/// Splits an entry name into safe components; `Err` says why the name is rejected.
fn normalize(name: &str) -> Result<Vec<String>, String> {
    if name.contains('\0') {
        return Err("has a NUL byte in its name".to_owned());
    }
    let name = name.replace('\\', "/");
    if name.starts_with('/') {
        return Err(
            "has an absolute path; entries must be relative to the archive root".to_owned(),
        );
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(
            "has a drive-letter path; entries must be relative to the archive root".to_owned(),
        );
    }
    let mut parts: Vec<String> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err("escapes the extraction directory through '..'".to_owned());
                }
            }
            other => parts.push(other.to_owned()),
        }
    }
    Ok(parts)
}

/// macOS resource forks and editor backup files are not part of a function.
fn skipped(path: &[String], is_dir: bool) -> bool {
    path[0] == "__MACOSX" || (!is_dir && path.last().is_some_and(|n| n.ends_with('~')))
}

fn read_link_target<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    index: usize,
) -> Result<String, String> {
    let entry = archive
        .by_index(index)
        .map_err(|e| format!("cannot read symlink: {e}"))?;
    let mut target = Vec::new();
    entry
        .take(MAX_LINK_TARGET + 1)
        .read_to_end(&mut target)
        .map_err(|e| format!("cannot read symlink: {e}"))?;
    if target.len() as u64 > MAX_LINK_TARGET {
        return Err(format!(
            "is a symlink with a target longer than {MAX_LINK_TARGET} bytes"
        ));
    }
    let target = String::from_utf8(target)
        .map_err(|_| "is a symlink whose target is not UTF-8".to_owned())?;
    if target.is_empty() || target.contains('\0') {
        return Err("is a symlink with an empty or invalid target".to_owned());
    }
    Ok(target)
}

/// The single top-level directory holding every entry (the `zip -r fn.zip fn/` layout), unless it
/// is `extension`/`extensions` (then the archive is a package whose code is only extensions).
fn single_top_dir(planned: &[Planned]) -> Option<String> {
    let first = planned.first()?;
    let top = &first.path[0];
    let all_under = planned.iter().all(|p| &p.path[0] == top);
    let top_is_dir = planned
        .iter()
        .all(|p| p.path.len() > 1 || p.kind == Kind::Dir);
    (all_under && top_is_dir && top != "extension" && top != "extensions").then(|| top.clone())
}

/// Resolves a symlink target inside the archive's tree, following the archive's other symlinks.
/// The result must stay inside the code root (`base`, or the archive root).
fn check_link(
    links: &HashMap<&[String], &str>,
    link: &[String],
    target: &str,
    base: Option<&str>,
) -> Result<(), String> {
    let outside = || format!("is a symlink to '{target}', which is outside the package");
    if target.starts_with('/') {
        return Err(format!("is a symlink to the absolute path '{target}'"));
    }
    let mut cur: Vec<String> = link[..link.len() - 1].to_vec();
    let mut queue: VecDeque<String> = target.split('/').map(str::to_owned).collect();
    let mut hops = 0;
    while let Some(part) = queue.pop_front() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                if cur.pop().is_none() {
                    return Err(outside());
                }
            }
            _ => {
                cur.push(part);
                if let Some(next) = links.get(cur.as_slice()) {
                    hops += 1;
                    if hops > MAX_LINK_HOPS {
                        return Err(format!("is a symlink to '{target}', which loops"));
                    }
                    if next.starts_with('/') {
                        return Err(outside());
                    }
                    cur.pop();
                    for p in next.split('/').rev() {
                        queue.push_front(p.to_owned());
                    }
                }
            }
        }
    }
    match base {
        Some(top) if cur.first().map(String::as_str) != Some(top) => Err(outside()),
        _ => Ok(()),
    }
}

fn dest_path(dir: &Path, path: &[String]) -> PathBuf {
    let mut dest = dir.to_owned();
    dest.extend(path);
    dest
}

/// Reads the raw names of the central directory starting at `start`. Stops after
/// `max_entries + 1` names (enough to know the archive is too big).
fn scan_central_directory(
    zip_path: &Path,
    start: u64,
    max_entries: usize,
) -> io::Result<Vec<Vec<u8>>> {
    const SIGNATURE: u32 = 0x0201_4b50;
    let mut reader = BufReader::new(File::open(zip_path)?);
    reader.seek(SeekFrom::Start(start))?;
    let mut names = Vec::new();
    let mut header = [0u8; 46];
    while names.len() <= max_entries {
        match reader.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) != SIGNATURE {
            break;
        }
        let u16_at = |i: usize| u16::from_le_bytes([header[i], header[i + 1]]);
        let (name_len, extra_len, comment_len) = (u16_at(28), u16_at(30), u16_at(32));
        let mut name = vec![0u8; usize::from(name_len)];
        reader.read_exact(&mut name)?;
        reader.seek_relative(i64::from(extra_len) + i64::from(comment_len))?;
        names.push(name);
    }
    if names.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no central directory header found",
        ));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn parts(s: &str) -> Vec<String> {
        s.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn normalize_rejects_escapes_and_absolute_names() {
        assert_eq!(normalize("a/./b//c").unwrap(), parts("a/b/c"));
        assert_eq!(normalize("a/../b").unwrap(), parts("b"));
        assert!(normalize("./").unwrap().is_empty());
        assert!(normalize("../evil").unwrap_err().contains(".."));
        assert!(normalize("a/../../evil").unwrap_err().contains(".."));
        assert!(normalize("..\\evil").unwrap_err().contains(".."));
        assert!(normalize("/etc/x").unwrap_err().contains("absolute"));
        assert!(normalize("C:/x").unwrap_err().contains("drive"));
    }

    #[test]
    fn link_resolution_follows_other_links() {
        let d_b = parts("d/b");
        let mut links: HashMap<&[String], &str> = HashMap::new();
        links.insert(&d_b, "..");
        // d/b -> .. is the root: fine.
        assert!(check_link(&links, &d_b, "..", None).is_ok());
        // a -> d/b/.. is lexically "d" but really the root's parent.
        assert!(check_link(&links, &parts("a"), "d/b/..", None).is_err());
        assert!(check_link(&links, &parts("a"), "d/b/x", None).is_ok());
        assert!(check_link(&links, &parts("a"), "/etc/passwd", None).is_err());
        assert!(check_link(&links, &parts("fn/a"), "../other", Some("fn")).is_err());
        assert!(check_link(&links, &parts("fn/a"), "../fn/x", Some("fn")).is_ok());
    }

    /// Writes a zip of `(name, content, deflated)` entries into a temp dir.
    fn make_zip(entries: &[(&str, &[u8], bool)]) -> (TempDir, PathBuf) {
        use std::io::Write;
        use zip::write::SimpleFileOptions;
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("fn.zip");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, content, deflated) in entries {
            let method = if *deflated {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            };
            let options = SimpleFileOptions::default().compression_method(method);
            zip.start_file(*name, options).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
        (tmp, path)
    }

    fn small(entries: usize, bytes: u64) -> Limits {
        Limits {
            entries,
            bytes,
            ..Limits::DEFAULT
        }
    }

    #[test]
    fn a_zip_bomb_is_refused_before_anything_is_written() {
        let zeros = vec![0u8; 3 * 1024 * 1024];
        let (_tmp, zip) = make_zip(&[("index.py", b"x = 1\n", true), ("bomb.bin", &zeros, true)]);
        let err = extract(&zip).unwrap_err().to_string();
        assert!(
            err.contains("entry 'bomb.bin'") && err.contains("at most 200×"),
            "{err}"
        );
        // Ordinary content far over the floor passes: text compresses well, but not 200×.
        let text: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| format!("line {i} of some code\n").into_bytes())
            .take(3 * 1024 * 1024)
            .collect();
        let (_tmp2, zip) = make_zip(&[("big.txt", &text, true)]);
        extract(&zip).unwrap();
    }

    #[test]
    fn declared_size_limit() {
        let (_tmp, zip) = make_zip(&[("a", &[b'a'; 600], true), ("b", &[b'b'; 600], true)]);
        let err = extract_with(&zip, small(10, 1000), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fn.zip: entry 'b'") && err.contains("1000 bytes"),
            "{err}"
        );
        extract_with(&zip, small(10, 1200), true).unwrap();
    }

    #[test]
    fn lying_size_headers_are_caught_by_counting_bytes() {
        let content = vec![b'x'; 5000];
        let (_tmp, zip) = make_zip(&[("bomb", &content, true)]);
        // Patch the declared uncompressed size (local header offset 22, central header offset
        // 24) from 5000 to 10.
        let mut bytes = fs::read(&zip).unwrap();
        let mut patched = 0;
        for i in 0..bytes.len() - 4 {
            let sig = &bytes[i..i + 4];
            let at = if sig == [0x50, 0x4b, 0x03, 0x04] {
                i + 22
            } else if sig == [0x50, 0x4b, 0x01, 0x02] {
                i + 24
            } else {
                continue;
            };
            assert_eq!(bytes[at..at + 4], 5000u32.to_le_bytes());
            bytes[at..at + 4].copy_from_slice(&10u32.to_le_bytes());
            patched += 1;
        }
        assert_eq!(patched, 2);
        fs::write(&zip, bytes).unwrap();
        let err = extract_with(&zip, small(10, 1000), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("entry 'bomb'") && err.contains("understate"),
            "{err}"
        );
    }

    #[test]
    fn entry_count_limit() {
        let (_tmp, zip) = make_zip(&[("a", b"", false), ("b", b"", false), ("c", b"", false)]);
        let err = extract_with(&zip, small(2, 1000), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fn.zip: has more than 2 entries"), "{err}");
        extract_with(&zip, small(3, 1000), true).unwrap();
    }

    #[test]
    fn link_loops_are_rejected() {
        let a = parts("a");
        let b = parts("b");
        let mut links: HashMap<&[String], &str> = HashMap::new();
        links.insert(&a, "b");
        links.insert(&b, "a");
        assert!(check_link(&links, &a, "b", None)
            .unwrap_err()
            .contains("loops"));
    }
}
