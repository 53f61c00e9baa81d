//! Where things are in a YAML file: a map from a value's path (`actions[1].endpoint`) to
//! its line and column.
//!
//! serde_yaml reports positions only for syntax errors, so this second, event-level pass
//! over the same text (with yaml-rust2, which marks every event) lets every later check —
//! type errors, unknown references, bad regexes — point at the line the user must edit.
//! It never decides what is valid; a file it cannot read simply has no positions.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// Positions of the values (and of the keys) of one YAML document, by path.
#[derive(Debug, Default, Clone)]
pub struct Locator {
    values: HashMap<String, Spot>,
    keys: HashMap<String, Spot>,
}

impl Locator {
    /// Reads the positions of every node of `text`; an unreadable text gives an empty map.
    pub fn new(text: &str) -> Locator {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        // A syntax error is reported by serde_yaml with its own position; here it only
        // means that positions past the error are unknown.
        let _ = parser.load(&mut walker, false);
        walker.locator
    }

    /// The position of the value at `path`, or of the closest parent that has one.
    pub fn value(&self, path: &str) -> Option<Spot> {
        let mut path = path;
        loop {
            if let Some(spot) = self.values.get(path) {
                return Some(*spot);
            }
            path = parent(path)?;
        }
    }

    /// The position of the key that ends `path` (e.g. `auth.tokn` for an unknown key).
    pub fn key(&self, path: &str) -> Option<Spot> {
        self.keys.get(path).copied()
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → `` → None.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Joins a map key onto a path.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a sequence index onto a path.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        /// Whether the first key has been seen.
        keyed: bool,
    },
    Seq {
        path: String,
        index: usize,
    },
    /// A collection used as a map key: its contents have no path of their own.
    Ignored,
}

#[derive(Default)]
struct Walker {
    locator: Locator,
    stack: Vec<Frame>,
}

impl Walker {
    /// The path the next value gets, or None when the next scalar is a map key.
    fn next_value_path(&self) -> Option<String> {
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Map { key: None, .. }) => None,
            Some(Frame::Map {
                path,
                key: Some(key),
                ..
            }) => Some(join_key(path, key)),
            Some(Frame::Seq { path, index }) => Some(join_index(path, *index)),
            Some(Frame::Ignored) => None,
        }
    }

    /// A value just ended: the parent map waits for its next key, a sequence moves on.
    fn value_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::Seq { index, .. }) => *index += 1,
            _ => {}
        }
    }

    fn scalar(&mut self, text: String, spot: Spot) {
        if matches!(self.stack.last(), Some(Frame::Ignored)) {
            return;
        }
        match self.next_value_path() {
            Some(path) => {
                self.locator.values.insert(path, spot);
                self.value_done();
            }
            None => {
                if let Some(Frame::Map { path, key, keyed }) = self.stack.last_mut() {
                    // A block mapping's own mark is where the parser noticed it (its first
                    // ':'); its first key is where a person sees it start.
                    if !*keyed {
                        self.locator.values.insert(path.clone(), spot);
                        *keyed = true;
                    }
                    self.locator.keys.insert(join_key(path, &text), spot);
                    *key = Some(text);
                }
            }
        }
    }

    fn open(&mut self, map: bool, spot: Spot) {
        let inside_ignored = matches!(self.stack.last(), Some(Frame::Ignored));
        match self.next_value_path() {
            Some(path) if !inside_ignored => {
                self.locator.values.insert(path.clone(), spot);
                self.stack.push(if map {
                    Frame::Map {
                        path,
                        key: None,
                        keyed: false,
                    }
                } else {
                    Frame::Seq { path, index: 0 }
                });
            }
            _ => self.stack.push(Frame::Ignored),
        }
    }

    fn close(&mut self) {
        let was_ignored = matches!(self.stack.pop(), Some(Frame::Ignored));
        if was_ignored {
            // A complex key: the map now expects its value under an unnamed key.
            if let Some(Frame::Map { key, .. }) = self.stack.last_mut()
                && key.is_none()
            {
                *key = Some("?".into());
                return;
            }
        }
        self.value_done();
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let spot = Spot {
            line: mark.line(),
            col: mark.col() + 1,
        };
        match event {
            Event::Scalar(text, ..) => self.scalar(text, spot),
            Event::Alias(_) => self.scalar(String::new(), spot),
            Event::MappingStart(..) => self.open(true, spot),
            Event::SequenceStart(..) => self.open(false, spot),
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
description: x
when:
  - event: call.disposition
  - field: status
    in: [SALE, APPT]
actions:
  - endpoint: hubspot
    adaptor: a
";

    #[test]
    fn finds_values_and_keys_by_path() {
        let loc = Locator::new(TEXT);
        assert_eq!(loc.value("description"), Some(Spot { line: 1, col: 14 }));
        assert_eq!(loc.value("when[1].field"), Some(Spot { line: 4, col: 12 }));
        assert_eq!(loc.value("when[1].in[1]"), Some(Spot { line: 5, col: 16 }));
        assert_eq!(
            loc.value("actions[0].endpoint"),
            Some(Spot { line: 7, col: 15 })
        );
        assert_eq!(
            loc.key("actions[0].adaptor"),
            Some(Spot { line: 8, col: 5 })
        );
    }

    #[test]
    fn falls_back_to_the_closest_parent() {
        let loc = Locator::new(TEXT);
        assert_eq!(loc.value("actions[0].missing"), loc.value("actions[0]"));
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
