//! The machine a topology is checked against: the cpus its tiles may be
//! pinned to.

/// What a topology is checked against: the cpus the runner may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Ids of the cpus tiles may be pinned to, ascending.
    pub cpus: Vec<usize>,
}

impl Machine {
    /// This machine as the calling thread sees it: the cpus in its
    /// affinity mask (a container or `taskset` may allow fewer than the
    /// machine has), or `0..available_parallelism` where the mask cannot
    /// be read.
    pub fn this() -> Machine {
        let mut cpus: Vec<usize> = core_affinity::get_core_ids()
            .map(|ids| ids.into_iter().map(|c| c.id).collect())
            .unwrap_or_default();
        if cpus.is_empty() {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            cpus = (0..n).collect();
        }
        cpus.sort_unstable();
        cpus.dedup();
        Machine { cpus }
    }

    /// A machine with cpus `0..n`.
    pub fn with_cpus(n: usize) -> Machine {
        Machine {
            cpus: (0..n).collect(),
        }
    }

    /// The cpus as ranges: `0-3, 6`.
    pub(crate) fn describe(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut i = 0;
        while i < self.cpus.len() {
            let mut j = i;
            while j + 1 < self.cpus.len() && self.cpus[j + 1] == self.cpus[j] + 1 {
                j += 1;
            }
            parts.push(if i == j {
                self.cpus[i].to_string()
            } else {
                format!("{}-{}", self.cpus[i], self.cpus[j])
            });
            i = j + 1;
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}
