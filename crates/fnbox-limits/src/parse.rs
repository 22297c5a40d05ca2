//! Pure parsers for the kernel files this crate reads. Kept free of I/O so they can be unit
//! tested against the exact texts the kernel produces, including the awkward cases (spaces and
//! parentheses in a process name, escaped mount points, `max` instead of a number).

use std::path::PathBuf;

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controller-list:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupLine<'a> {
    pub id: u32,
    /// Empty for the cgroup v2 line (`0::/path`).
    pub controllers: Vec<&'a str>,
    pub path: &'a str,
}

/// Parses `/proc/<pid>/cgroup`. Malformed lines are skipped. The path may itself contain `:`,
/// so only the first two colons separate fields.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<CgroupLine<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.splitn(3, ':');
            let id = it.next()?.trim().parse().ok()?;
            let ctrl = it.next()?;
            let path = it.next()?;
            let controllers = if ctrl.is_empty() {
                Vec::new()
            } else {
                ctrl.split(',').collect()
            };
            Some(CgroupLine {
                id,
                controllers,
                path,
            })
        })
        .collect()
}

/// The cgroup v2 path (`0::<path>`) from `/proc/<pid>/cgroup`.
pub(crate) fn v2_cgroup_path(text: &str) -> Option<&str> {
    parse_proc_cgroup(text)
        .into_iter()
        .find(|l| l.id == 0 && l.controllers.is_empty())
        .map(|l| l.path)
}

/// The cgroup v1 path of the hierarchy carrying `controller` from `/proc/<pid>/cgroup`.
pub(crate) fn v1_cgroup_path<'a>(text: &'a str, controller: &str) -> Option<&'a str> {
    parse_proc_cgroup(text)
        .into_iter()
        .find(|l| l.controllers.contains(&controller))
        .map(|l| l.path)
}

/// The fields of one `/proc/<pid>/mountinfo` line this crate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// The path inside the mounted filesystem that is mounted here (`/` normally; a cgroup path
    /// for a bind mount of a sub-tree).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub super_opts: String,
}

impl MountInfo {
    /// Whether the superblock options contain exactly `opt` (e.g. `memory`).
    pub fn has_super_opt(&self, opt: &str) -> bool {
        self.super_opts.split(',').any(|o| o == opt)
    }
}

/// Parses `/proc/<pid>/mountinfo`: `id parent maj:min root mount-point opts [optional...] - fstype
/// source super-opts`. Malformed lines are skipped.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut l = left.split(' ');
            let _id = l.next()?;
            let _parent = l.next()?;
            let _dev = l.next()?;
            let root = unescape_mount(l.next()?);
            let mount_point = PathBuf::from(unescape_mount(l.next()?));
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let _source = r.next()?;
            let super_opts = r.next().unwrap_or("").to_string();
            Some(MountInfo {
                root,
                mount_point,
                fstype,
                super_opts,
            })
        })
        .collect()
}

/// Undoes the octal escapes (`\040` for a space etc.) the kernel uses in mountinfo paths.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Maps a cgroup path (as in `/proc/self/cgroup`) to a directory through `mount`, or `None` when
/// that cgroup is not visible through this mount (the mount shows a different sub-tree).
pub(crate) fn cgroup_dir(mount: &MountInfo, cg_path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rel = if root.is_empty() {
        cg_path
    } else if cg_path == root {
        ""
    } else {
        cg_path.strip_prefix(root).filter(|r| r.starts_with('/'))?
    };
    let rel = rel.trim_start_matches('/');
    Some(if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    })
}

/// Reads `key` from a flat keyed file (`key value` per line), as `memory.oom_control`,
/// `memory.events` and `memory.stat` are.
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_ascii_whitespace();
        (it.next()? == key).then_some(())?;
        it.next()?.parse().ok()
    })
}

/// Parses a single-value cgroup file (`memory.current`, `memory.max_usage_in_bytes`, ...);
/// `max` (v2 "unlimited") maps to `u64::MAX`.
pub(crate) fn single_value(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        Some(u64::MAX)
    } else {
        t.parse().ok()
    }
}

/// The fields of `/proc/<pid>/stat` this crate needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 5.
    pub pgrp: i32,
    /// Field 22, clock ticks after boot; with the pid it identifies a process across pid reuse.
    pub starttime: u64,
    /// Field 24, resident pages (the same number as `statm`'s second field).
    pub rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the LAST `)`.
pub(crate) fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Field 3 (state) is index 0 here, so field n is index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().take(22).collect();
    Some(ProcStat {
        pgrp: fields.get(2)?.parse().ok()?,
        starttime: fields.get(19)?.parse().ok()?,
        rss_pages: fields.get(21)?.parse().ok()?,
    })
}

/// The per-run directory name: `<pid>-<starttime>`. The start time makes it unambiguous after
/// the pid has been reused.
pub(crate) fn owner_name(pid: i32, starttime: u64) -> String {
    format!("{pid}-{starttime}")
}

/// Inverse of [`owner_name`].
pub(crate) fn parse_owner_name(name: &str) -> Option<(i32, u64)> {
    let (pid, start) = name.split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Formats `pid` as decimal ASCII into `buf` without allocating (for the `pre_exec` hook, which
/// must be async-signal-safe). Returns the number of bytes written.
pub(crate) fn format_pid(pid: i32, buf: &mut [u8; 24]) -> usize {
    let mut v = i64::from(pid).unsigned_abs();
    let mut tmp = [0u8; 24];
    let mut n = 0;
    loop {
        tmp[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let mut len = 0;
    if pid < 0 {
        buf[0] = b'-';
        len = 1;
    }
    for i in (0..n).rev() {
        buf[len] = tmp[i];
        len += 1;
    }
    len
}

/// Whether `name` can be used as one cgroup directory name.
pub(crate) fn check_group_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name == "." || name == ".." {
        return Err("not a plain name");
    }
    if name.contains('/') || name.contains('\0') {
        return Err("contains '/' or NUL");
    }
    if name.len() > 200 {
        return Err("longer than 200 bytes");
    }
    if name.starts_with("cgroup.") || name.starts_with("memory.") {
        return Err("clashes with cgroup control files");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_hybrid() {
        let text =
            "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/6f1f\n3:cpu,cpuacct:/a:b\n0::/\n";
        let lines = parse_proc_cgroup(text);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[3].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(lines[3].path, "/a:b");
        assert_eq!(v1_cgroup_path(text, "memory"), Some("/process_api/6f1f"));
        assert_eq!(v1_cgroup_path(text, "hugetlb"), None);
        assert_eq!(v2_cgroup_path(text), Some("/"));
    }

    #[test]
    fn proc_cgroup_pure_v2_and_garbage() {
        let text = "garbage\n0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            v2_cgroup_path(text),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(v1_cgroup_path(text, "memory"), None);
        assert_eq!(v2_cgroup_path("4:memory:/x\n"), None);
    }

    #[test]
    fn mountinfo_lines() {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n\
                    50 31 0:40 /docker/abc /mnt/with\\040space rw - cgroup cgroup rw,cpu,memory\n\
                    bad line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, PathBuf::from("/sys/fs/cgroup/memory"));
        assert!(m[0].has_super_opt("memory"));
        assert!(!m[0].has_super_opt("mem"));
        assert_eq!(m[1].fstype, "cgroup2");
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[2].root, "/docker/abc");
        assert!(m[2].has_super_opt("memory"));
    }

    #[test]
    fn cgroup_dir_mapping() {
        let m = MountInfo {
            root: "/".into(),
            mount_point: "/sys/fs/cgroup/memory".into(),
            fstype: "cgroup".into(),
            super_opts: "rw,memory".into(),
        };
        assert_eq!(
            cgroup_dir(&m, "/"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            cgroup_dir(&m, "/a/b"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/a/b"))
        );
        let sub = MountInfo {
            root: "/docker/abc".into(),
            ..m
        };
        assert_eq!(
            cgroup_dir(&sub, "/docker/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            cgroup_dir(&sub, "/docker/abc/x"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/x"))
        );
        assert_eq!(cgroup_dir(&sub, "/docker/abcd"), None);
        assert_eq!(cgroup_dir(&sub, "/other"), None);
    }

    #[test]
    fn oom_control_v1() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(3));
        assert_eq!(keyed_value(text, "under_oom"), Some(0));
        // Kernels before 4.13 have no oom_kill line.
        assert_eq!(
            keyed_value("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            None
        );
    }

    #[test]
    fn memory_events_v2() {
        let text = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(text, "oom_kill"), Some(1));
        assert_eq!(keyed_value(text, "oom"), Some(2));
        assert_eq!(keyed_value(text, "oom_group_kill"), Some(0));
        assert_eq!(keyed_value(text, "missing"), None);
    }

    #[test]
    fn single_values() {
        assert_eq!(single_value("4874240\n"), Some(4874240));
        assert_eq!(single_value("max\n"), Some(u64::MAX));
        assert_eq!(single_value(""), None);
    }

    #[test]
    fn proc_stat_plain() {
        let text = "6372 (sleep) S 6371 6372 6000 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 123456 2265088 130 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pgrp: 6372,
                starttime: 123456,
                rss_pages: 130
            }
        );
    }

    #[test]
    fn proc_stat_weird_comm() {
        let text = "42 (a) b (c) d) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 1000 5 0\n";
        let s = parse_proc_stat(text).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pgrp: 77,
                starttime: 999,
                rss_pages: 5
            }
        );
        let spaces = "43 (my  prog ) S 1 88 88 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 7 1000 6 0\n";
        assert_eq!(parse_proc_stat(spaces).unwrap().pgrp, 88);
        assert_eq!(parse_proc_stat("43 (x) S 1"), None);
        assert_eq!(parse_proc_stat("no parens"), None);
    }

    #[test]
    fn owner_names() {
        assert_eq!(owner_name(123, 456), "123-456");
        assert_eq!(parse_owner_name("123-456"), Some((123, 456)));
        assert_eq!(parse_owner_name("hello-128"), None);
        assert_eq!(parse_owner_name("123"), None);
    }

    #[test]
    fn pid_formatting() {
        let mut buf = [0u8; 24];
        for pid in [0, 7, 10, 4194304, i32::MAX, -5] {
            let n = format_pid(pid, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), pid.to_string());
        }
    }

    #[test]
    fn group_names() {
        assert!(check_group_name("hello-128-1a2b3c4d").is_ok());
        for bad in ["", ".", "..", "a/b", "cgroup.procs", "memory.max"] {
            assert!(check_group_name(bad).is_err(), "{bad:?}");
        }
    }
}
