//! Where things are in a YAML file: a map from a value's path (`actions[1].endpoint`) to
//! its line and column.
//!
//! serde_yaml reports positions only for syntax errors, so this second, event-level pass
//! over the same text (with yaml-rust2, which marks every event) lets every later check —
//! type errors, unknown references, bad regexes — point at the line the user must edit.
//! It never decides what is valid; a file it cannot read simply has no positions. It does
//! refuse collections nested too deep, before serde_yaml reads the file.
//!
//! The nodes form a tree (each knows its parent and its own key or index), found by a hash
//! of their path's text: memory and time grow with the file, even when one long key is the
//! parent of a million values, where a path string per node would repeat the key each time.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spot {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

/// Why a file is refused before serde_yaml reads it, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Collections nest deeper than allowed, aliases expanded; at the first one too deep
    /// (or where the parser gave up counting).
    TooDeep(Spot),
    /// Aliases (`*name`) expand the file beyond the allowed size; at the alias that does.
    TooLarge(Spot),
}

/// The limits a file's tree must keep to, aliases expanded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How deep collections may nest.
    pub depth: usize,
    /// How many bytes of scalars and how many nodes, together, once aliases add theirs
    /// (a file without aliases is held to its size in bytes instead).
    pub size: u64,
}

/// Positions of the values (and of the keys) of one YAML document, by path.
#[derive(Debug, Clone)]
pub struct Locator {
    /// The document's nodes; the first is the document itself (path ``).
    nodes: Vec<Node>,
    /// The latest node with each path hash; older ones follow through `Node::same_hash`.
    by_hash: HashMap<u64, usize>,
    /// The first key written twice in one mapping: where, and where it was first.
    duplicate: Option<Duplicate>,
}

/// A key written twice in one mapping (serde_yaml says so, but at the mapping's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The key.
    pub key: String,
    /// Where it is written the second time.
    pub at: Spot,
    /// Where it is written first.
    pub first: Option<Spot>,
}

#[derive(Debug, Clone)]
struct Node {
    /// None for the document itself.
    parent: Option<usize>,
    part: Part,
    /// The hash of the path's text (see `PathHash`).
    hash: u64,
    /// Whether the path's text is empty (the document, or a `""` key at its top).
    empty: bool,
    /// The previous node with the same hash.
    same_hash: Option<usize>,
    value: Option<Spot>,
    key: Option<Spot>,
}

#[derive(Debug, Clone)]
enum Part {
    Key(Box<str>),
    Index(usize),
}

impl Locator {
    /// Reads the positions of every node of `text`; a text it cannot read has no positions
    /// past the point it could not read.
    ///
    /// Fails when the tree serde_yaml would build from `text` breaks `limits`: the walk
    /// stops at the first collection too deep or alias too large, before any parser has to
    /// hold the rest (libyaml takes time that grows with the square of the depth).
    pub fn new(text: &str, limits: Limits) -> Result<Locator, Refused> {
        let mut walker = Walker {
            locator: Locator::empty(),
            stack: Vec::new(),
        };
        let mut measure = Measure::new(limits);
        let mut parser = Parser::new_from_str(text);
        let mut documents = 0usize;
        loop {
            // A syntax error is reported by serde_yaml with its own position; here it only
            // means that positions past the error are unknown. The scanner's own limit on
            // nested flow collections ([[[…, 255 levels) is the same problem as ours, met
            // first: it looks ahead through them before it gives the first one.
            let (event, mark) = match parser.next_token() {
                Ok(next) => next,
                Err(e) if e.info() == "recursion limit exceeded" => {
                    return Err(Refused::TooDeep(spot(e.marker())));
                }
                Err(_) => break,
            };
            if event == Event::StreamEnd {
                break;
            }
            if event == Event::DocumentEnd {
                documents += 1;
            }
            measure.event(&event, spot(&mark))?;
            // Only the first document is the configuration (serde_yaml refuses more); the
            // others are still measured.
            if documents == 0 {
                walker.on_event(event, mark);
            }
        }
        Ok(walker.locator)
    }

    /// A locator that knows only the document itself, without a position.
    fn empty() -> Locator {
        Locator {
            nodes: vec![Node {
                parent: None,
                part: Part::Index(0),
                hash: PathHash::EMPTY.0,
                empty: true,
                same_hash: None,
                value: None,
                key: None,
            }],
            by_hash: HashMap::from([(PathHash::EMPTY.0, 0)]),
            duplicate: None,
        }
    }

    /// The first key written twice in one mapping, if any.
    pub fn duplicate(&self) -> Option<&Duplicate> {
        self.duplicate.as_ref()
    }

    /// The position of the value at `path`, or of the closest parent that has one.
    pub fn value(&self, path: &str) -> Option<Spot> {
        let mut path = path;
        loop {
            if let Some(spot) = self.find(path).and_then(|n| self.nodes[n].value) {
                return Some(spot);
            }
            path = parent(path)?;
        }
    }

    /// The position of the key that ends `path` (e.g. `auth.tokn` for an unknown key).
    pub fn key(&self, path: &str) -> Option<Spot> {
        self.find(path).and_then(|n| self.nodes[n].key)
    }

    /// The latest node whose path is `path`.
    fn find(&self, path: &str) -> Option<usize> {
        let mut candidate = self.by_hash.get(&PathHash::of(path)).copied();
        while let Some(node) = candidate {
            if self.has_path(node, path) {
                return Some(node);
            }
            candidate = self.nodes[node].same_hash;
        }
        None
    }

    /// Whether the path of `node` is `path`, compared part by part from the end.
    fn has_path(&self, node: usize, path: &str) -> bool {
        let mut rest = path;
        let mut node = &self.nodes[node];
        while let Some(parent) = node.parent {
            let parent = &self.nodes[parent];
            let stripped = match &node.part {
                Part::Key(key) => rest.strip_suffix(&**key).and_then(|r| {
                    if parent.empty {
                        Some(r)
                    } else {
                        r.strip_suffix('.')
                    }
                }),
                Part::Index(index) => rest
                    .strip_suffix(']')
                    .and_then(|r| r.strip_suffix(index.to_string().as_str()))
                    .and_then(|r| r.strip_suffix('[')),
            };
            match stripped {
                Some(r) => rest = r,
                None => return false,
            }
            node = parent;
        }
        rest.is_empty()
    }

    /// The child of `parent` at `part`, new.
    fn add(&mut self, parent: usize, part: Part) -> usize {
        let above = &self.nodes[parent];
        let mut hash = PathHash(above.hash);
        let empty = match &part {
            Part::Key(key) => {
                if !above.empty {
                    hash.add(".");
                }
                hash.add(key);
                above.empty && key.is_empty()
            }
            Part::Index(index) => {
                hash.add("[");
                hash.add(&index.to_string());
                hash.add("]");
                false
            }
        };
        let id = self.nodes.len();
        let same_hash = self.by_hash.insert(hash.0, id);
        self.nodes.push(Node {
            parent: Some(parent),
            part,
            hash: hash.0,
            empty,
            same_hash,
            value: None,
            key: None,
        });
        id
    }
}

/// FNV-1a over the bytes of a path's text, continued part by part: a node's hash is its
/// parent's, fed with what `join_key` or `join_index` appends. Two paths with the same hash
/// are told apart by `Locator::has_path`.
#[derive(Clone, Copy)]
struct PathHash(u64);

impl PathHash {
    const EMPTY: PathHash = PathHash(0xcbf2_9ce4_8422_2325);

    fn add(&mut self, text: &str) {
        for byte in text.bytes() {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn of(text: &str) -> u64 {
        let mut hash = PathHash::EMPTY;
        hash.add(text);
        hash.0
    }
}

/// The depth and size of the tree serde_yaml would build, aliases expanded, as events come.
struct Measure {
    limits: Limits,
    /// The open collections: their anchor, the size when they opened, their height so far.
    open: Vec<(usize, u64, usize)>,
    /// Each anchor's size and height, once its node is complete.
    anchors: HashMap<usize, (u64, usize)>,
    size: u64,
}

impl Measure {
    fn new(limits: Limits) -> Measure {
        Measure {
            limits,
            open: Vec::new(),
            anchors: HashMap::new(),
            size: 0,
        }
    }

    fn event(&mut self, event: &Event, at: Spot) -> Result<(), Refused> {
        match event {
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                self.open.push((*anchor, self.size, 0));
                self.size += 1;
                if self.open.len() > self.limits.depth {
                    return Err(Refused::TooDeep(at));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some((anchor, start, height)) = self.open.pop() {
                    self.done(anchor, self.size - start, height + 1);
                }
            }
            Event::Scalar(text, _, anchor, _) => {
                self.size += 1 + text.len() as u64;
                self.done(*anchor, 1 + text.len() as u64, 0);
            }
            Event::Alias(anchor) => {
                // An alias of a node still open is refused by serde_yaml as recursive.
                let (size, height) = self.anchors.get(anchor).copied().unwrap_or((1, 0));
                if self.open.len() + height > self.limits.depth {
                    return Err(Refused::TooDeep(at));
                }
                self.size += size;
                if self.size > self.limits.size {
                    return Err(Refused::TooLarge(at));
                }
                self.done(0, size, height);
            }
            _ => {}
        }
        Ok(())
    }

    /// A node is complete: its anchor (0 for none) is known, its parent is at least one
    /// level higher.
    fn done(&mut self, anchor: usize, size: u64, height: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (size, height));
        }
        if let Some((_, _, parent)) = self.open.last_mut() {
            *parent = (*parent).max(height);
        }
    }
}

fn spot(mark: &Marker) -> Spot {
    Spot {
        line: mark.line(),
        col: mark.col() + 1,
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
        node: usize,
        /// The node of the key just read, waiting for its value.
        key: Option<usize>,
        /// Whether the first key has been seen.
        keyed: bool,
    },
    Seq {
        node: usize,
        index: usize,
    },
    /// A collection used as a map key: its contents have no path of their own.
    Ignored,
}

struct Walker {
    locator: Locator,
    stack: Vec<Frame>,
}

impl Walker {
    /// The node the next value is, or None when the next scalar is a map key.
    fn next_value_node(&mut self) -> Option<usize> {
        match self.stack.last() {
            None => Some(0),
            Some(Frame::Map { key, .. }) => *key,
            Some(Frame::Seq { node, index }) => {
                let (node, index) = (*node, *index);
                Some(self.locator.add(node, Part::Index(index)))
            }
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
        match self.next_value_node() {
            Some(node) => {
                self.locator.nodes[node].value = Some(spot);
                self.value_done();
            }
            None => {
                if let Some(Frame::Map { node, key, keyed }) = self.stack.last_mut() {
                    // A block mapping's own mark is where the parser noticed it (its first
                    // ':'); its first key is where a person sees it start.
                    if !*keyed {
                        self.locator.nodes[*node].value = Some(spot);
                        *keyed = true;
                    }
                    let child = self.locator.add(*node, Part::Key(text.into()));
                    self.locator.nodes[child].key = Some(spot);
                    // The same key in the same map is the previous node of the same path
                    // (only that one is looked at: nothing compares every pair of keys).
                    let nodes = &self.locator.nodes;
                    if self.locator.duplicate.is_none()
                        && let Some(previous) = nodes[child].same_hash
                        && nodes[previous].parent == Some(*node)
                        && let (Part::Key(a), Part::Key(b)) =
                            (&nodes[previous].part, &nodes[child].part)
                        && a == b
                    {
                        self.locator.duplicate = Some(Duplicate {
                            key: a.to_string(),
                            at: spot,
                            first: nodes[previous].key,
                        });
                    }
                    *key = Some(child);
                }
            }
        }
    }

    fn open(&mut self, map: bool, spot: Spot) {
        let inside_ignored = matches!(self.stack.last(), Some(Frame::Ignored));
        match self.next_value_node() {
            Some(node) if !inside_ignored => {
                self.locator.nodes[node].value = Some(spot);
                self.stack.push(if map {
                    Frame::Map {
                        node,
                        key: None,
                        keyed: false,
                    }
                } else {
                    Frame::Seq { node, index: 0 }
                });
            }
            _ => self.stack.push(Frame::Ignored),
        }
    }

    fn close(&mut self) {
        let was_ignored = matches!(self.stack.pop(), Some(Frame::Ignored));
        if was_ignored {
            // A complex key: the map now expects its value under an unnamed key.
            if let Some(Frame::Map { node, key, .. }) = self.stack.last_mut()
                && key.is_none()
            {
                *key = Some(self.locator.add(*node, Part::Key("?".into())));
                return;
            }
        }
        self.value_done();
    }

    fn on_event(&mut self, event: Event, mark: Marker) {
        let spot = spot(&mark);
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

    const LIMITS: Limits = Limits {
        depth: 64,
        size: 1 << 20,
    };

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
        let loc = Locator::new(TEXT, LIMITS).unwrap();
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
    fn keys_may_hold_dots_and_the_latest_of_two_equal_keys_wins() {
        let loc = Locator::new("extra:\n  a.b: 1\n  a: {b: 2}\nx: 1\nx: 2\n", LIMITS).unwrap();
        assert_eq!(loc.value("extra.a.b"), Some(Spot { line: 3, col: 10 }));
        assert_eq!(loc.key("extra.a"), Some(Spot { line: 3, col: 3 }));
        assert_eq!(loc.value("x"), Some(Spot { line: 5, col: 4 }));
        assert_eq!(loc.value("extra.nope[3]"), loc.value("extra"));
    }

    #[test]
    fn finds_the_first_key_written_twice_in_one_map() {
        let loc = Locator::new("a: 1\nauth:\n  type: x\n  t: 1\n  t: 2\na: 2\n", LIMITS).unwrap();
        let dup = loc.duplicate().expect("a duplicate");
        assert_eq!(dup.key, "t");
        assert_eq!(dup.at, Spot { line: 5, col: 3 });
        assert_eq!(dup.first, Some(Spot { line: 4, col: 3 }));
        let loc = Locator::new("a:\n  t: 1\nb:\n  t: 1\n", LIMITS).unwrap();
        assert_eq!(loc.duplicate(), None);
    }

    #[test]
    fn measures_depth_and_size_with_aliases_expanded() {
        let limits = Limits { depth: 3, size: 40 };
        assert!(Locator::new("a: [[1]]\n", limits).is_ok());
        assert_eq!(
            Locator::new("a: [[[1]]]\n", limits).unwrap_err(),
            Refused::TooDeep(Spot { line: 1, col: 6 })
        );
        assert_eq!(
            Locator::new("a: &x [1]\nb: [*x]\nc: [[*x]]\n", limits).unwrap_err(),
            Refused::TooDeep(Spot { line: 3, col: 6 })
        );
        assert!(Locator::new("a: &x 0123456789\nb: [*x, *x]\n", limits).is_ok());
        assert_eq!(
            Locator::new("a: &x 0123456789\nb: [*x, *x, *x]\n", limits).unwrap_err(),
            Refused::TooLarge(Spot { line: 2, col: 13 })
        );
    }

    #[test]
    fn falls_back_to_the_closest_parent() {
        let loc = Locator::new(TEXT, LIMITS).unwrap();
        assert_eq!(loc.value("actions[0].missing"), loc.value("actions[0]"));
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
