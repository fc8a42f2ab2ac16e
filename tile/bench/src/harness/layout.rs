//! The layout report: what ran pinned where, and which vCPUs share a
//! cache (from `/sys/devices/system/cpu/cpu*/cache`), so a reader of a
//! result knows whether the two sides of a bench talked through a shared
//! cache or across sockets.

use std::path::Path;

use super::pin::Cores;

/// One cache level of the machine as the kernel reports it for a cpu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cache {
    /// 1, 2, 3.
    pub level: u32,
    /// "Data", "Instruction", "Unified".
    pub kind: String,
    /// The cpus sharing it, as the kernel lists them ("0-1", "0,2").
    pub shared_cpu_list: String,
}

/// The caches of `cpu` under `sys` (`/sys/devices/system/cpu` on a live
/// machine), in the kernel's index order; empty where it says nothing.
pub(crate) fn caches_under(sys: &Path, cpu: usize) -> Vec<Cache> {
    let dir = sys.join(format!("cpu{cpu}/cache"));
    let read = |p: &Path| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let mut out = Vec::new();
    for index in 0.. {
        let d = dir.join(format!("index{index}"));
        let (Some(level), Some(kind), Some(shared_cpu_list)) = (
            read(&d.join("level")).and_then(|l| l.parse().ok()),
            read(&d.join("type")),
            read(&d.join("shared_cpu_list")),
        ) else {
            break;
        };
        out.push(Cache {
            level,
            kind,
            shared_cpu_list,
        });
    }
    out
}

/// The cpus of a kernel cpu list ("0-3,8,10-11").
pub(crate) fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out
}

/// Which caches `a` and `b` share, as a line: `"cpu 0 and cpu 1 share
/// L3 (cpus 0-1); not L1d, L1i, L2"`, read under `sys`.
pub(crate) fn shared_caches_under(sys: &Path, a: usize, b: usize) -> String {
    let caches = caches_under(sys, a);
    if caches.is_empty() {
        return format!(
            "cpu {a} and cpu {b}: no cache topology in {}",
            sys.display()
        );
    }
    let name = |c: &Cache| match c.kind.as_str() {
        "Data" => format!("L{}d", c.level),
        "Instruction" => format!("L{}i", c.level),
        _ => format!("L{}", c.level),
    };
    let (shared, apart): (Vec<&Cache>, Vec<&Cache>) = caches
        .iter()
        .partition(|c| parse_cpu_list(&c.shared_cpu_list).contains(&b));
    let shared: Vec<String> = shared
        .iter()
        .map(|c| format!("{} (cpus {})", name(c), c.shared_cpu_list))
        .collect();
    let apart: Vec<String> = apart.iter().map(|c| name(c)).collect();
    match (shared.is_empty(), apart.is_empty()) {
        (true, _) => format!("cpu {a} and cpu {b} share no cache"),
        (false, true) => format!("cpu {a} and cpu {b} share {}", shared.join(", ")),
        (false, false) => format!(
            "cpu {a} and cpu {b} share {}; not {}",
            shared.join(", "),
            apart.join(", ")
        ),
    }
}

/// The layout report of a two-sided bench: what was pinned where and
/// which caches the two cpus share.
pub(crate) fn report(cores: &Cores, pinned: &str) -> String {
    match caches(cores) {
        Some(c) => format!("pinned: {pinned}\ncaches: {c}"),
        None => format!("pinned: {pinned}"),
    }
}

/// Which caches the two cores of `cores` share (see
/// [`shared_caches_under`]); `None` with fewer than two cores.
pub(crate) fn caches(cores: &Cores) -> Option<String> {
    let (a, b) = (cores.first?, cores.second?);
    Some(shared_caches_under(
        Path::new("/sys/devices/system/cpu"),
        a.id,
        b.id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("5"), vec![5]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
    }

    #[test]
    fn shared_caches_are_read_from_sysfs() {
        let dir = std::env::temp_dir().join(format!("tw-bench-sys-{}", std::process::id()));
        let caches = [
            (1, "Data", "0"),
            (1, "Instruction", "0"),
            (2, "Unified", "0"),
            (3, "Unified", "0-1"),
        ];
        for (i, (level, kind, list)) in caches.iter().enumerate() {
            let d = dir.join(format!("cpu0/cache/index{i}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("shared_cpu_list"), format!("{list}\n")).unwrap();
        }
        let line = shared_caches_under(&dir, 0, 1);
        let none = shared_caches_under(&dir, 0, 7);
        let missing = shared_caches_under(&dir, 3, 4);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            line,
            "cpu 0 and cpu 1 share L3 (cpus 0-1); not L1d, L1i, L2"
        );
        assert_eq!(none, "cpu 0 and cpu 7 share no cache");
        assert!(missing.contains("no cache topology"), "{missing}");
    }
}
