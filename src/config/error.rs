//! Configuration errors: what is wrong, in which file, at which line and column.
//!
//! Loading never stops at the first problem: every check pushes into [`Problems`], and
//! the caller gets them all at once, sorted by file and position, as `validate` prints them.

use std::fmt;

use super::locate::Spot;

/// One problem in a configuration, pointing at where the user must look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path relative to the configuration folder, e.g. `workflows/sale.yaml`.
    pub file: String,
    /// Position of the offending value, when the parser knows it.
    pub spot: Option<Spot>,
    /// What is wrong, in the user's terms.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One error, one line: messages from parsers sometimes span several.
        let message = self
            .message
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        match self.spot {
            Some(Spot { line, col }) => write!(f, "{}:{line}:{col}: {message}", self.file),
            None => write!(f, "{}: {message}", self.file),
        }
    }
}

/// Every problem found while loading a configuration (at least one).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors {
    /// The errors, sorted by file and position.
    pub errors: Vec<ConfigError>,
    /// The warnings found as well, sorted the same way (`validate` shows them too).
    pub warnings: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects errors and warnings while a configuration is loaded and compiled.
#[derive(Debug, Default)]
pub struct Problems {
    /// Problems that make the configuration unusable.
    pub errors: Vec<ConfigError>,
    /// Things that work but are probably not what the user meant.
    pub warnings: Vec<ConfigError>,
    /// Values whose first error explains any other: later errors there are dropped.
    settled: Vec<(String, Spot)>,
}

impl Problems {
    /// Records an error.
    pub fn error(&mut self, error: ConfigError) {
        let settled =
            |(file, spot): &(String, Spot)| *file == error.file && error.spot == Some(*spot);
        if !self.settled.iter().any(settled) {
            self.errors.push(error);
        }
    }

    /// Records an error that explains whatever else goes wrong with the same value (an
    /// unset `${VAR}` leaves `${VAR}` there, which is no valid URL or number either): later
    /// errors at its position are dropped, other errors of the file are still reported.
    pub fn error_settling(&mut self, error: ConfigError) {
        let spot = error.spot;
        let file = error.file.clone();
        self.error(error);
        if let Some(spot) = spot {
            self.settled.push((file, spot));
        }
    }

    /// Records a warning.
    pub fn warn(&mut self, warning: ConfigError) {
        self.warnings.push(warning);
    }

    /// Ok with the warnings when nothing is wrong, else every error, sorted.
    pub fn finish(mut self) -> Result<Vec<ConfigError>, ConfigErrors> {
        if self.errors.is_empty() {
            sort(&mut self.warnings);
            return Ok(self.warnings);
        }
        sort(&mut self.errors);
        sort(&mut self.warnings);
        Err(ConfigErrors {
            errors: self.errors,
            warnings: self.warnings,
        })
    }
}

/// `1 adaptor`, `2 adaptors`: a count with its noun (plural by adding `s`).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn sort(list: &mut Vec<ConfigError>) {
    list.sort_by(|a, b| {
        let pos = |e: &ConfigError| e.spot.map(|s| (s.line, s.col)).unwrap_or((0, 0));
        a.file.cmp(&b.file).then(pos(a).cmp(&pos(b)))
    });
    list.dedup();
}
