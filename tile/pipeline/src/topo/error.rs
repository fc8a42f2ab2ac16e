//! What is wrong with a topology: each problem at its line and column.

use std::path::{Path, PathBuf};

/// One problem in a topology.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.display())]
pub struct TopoError {
    /// 1-based line it concerns; 0 when it concerns no line (the file
    /// could not be read).
    pub line: usize,
    /// 1-based column (in bytes) on that line; 0 with line 0.
    pub col: usize,
    /// What is wrong, and where it helps, what would be right.
    pub reason: String,
}

impl TopoError {
    fn display(&self) -> String {
        if self.line == 0 {
            self.reason.clone()
        } else {
            format!("line {}: {}", self.line, self.reason)
        }
    }
}

/// Every problem found in a topology, in line order, and the file it came
/// from when it came from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoErrors {
    file: Option<PathBuf>,
    errors: Vec<TopoError>,
    /// Each error as it is told, when not by its line (a topology made by
    /// a [`PipelineBuilder`](crate::PipelineBuilder) has no lines its user
    /// wrote).
    told: Option<Vec<String>>,
}

impl TopoErrors {
    pub(crate) fn new(mut errors: Vec<TopoError>) -> TopoErrors {
        errors.sort_by_key(|e| (e.line, e.col));
        TopoErrors {
            file: None,
            errors,
            told: None,
        }
    }

    /// These errors, each told as `tell` says instead of by its line.
    pub(crate) fn told_by(mut self, tell: impl Fn(&TopoError) -> String) -> TopoErrors {
        self.told = Some(self.errors.iter().map(tell).collect());
        self
    }

    /// The problems, by line (for a topology a
    /// [`PipelineBuilder`](crate::PipelineBuilder) made, lines of
    /// [`PipelineBuilder::text`](crate::PipelineBuilder::text); its errors
    /// print without them, naming the tile or link and key instead).
    pub fn errors(&self) -> &[TopoError] {
        &self.errors
    }

    /// The file the topology came from, if known.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Names the file the errors are in (printed before each).
    pub fn in_file(mut self, path: &Path) -> TopoErrors {
        self.file = Some(path.to_path_buf());
        self
    }
}

impl core::fmt::Display for TopoErrors {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if let Some(p) = &self.file {
                write!(f, "{}: ", p.display())?;
            }
            match &self.told {
                Some(told) => f.write_str(&told[i])?,
                None => write!(f, "{e}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for TopoErrors {}
