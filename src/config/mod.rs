//! Configuration: a folder of YAML files → plain serde specs.
//!
//! Reads `adaptors/`, `endpoints/` and `workflows/` (one object per `.yaml`/`.yml` file;
//! `*.test.yaml` files are tests, read by `switchboard test`, not configuration),
//! interpolates `${VAR}` references, rejects unknown keys and checks each file's shape.
//! Every problem is collected with its file, line and column; nothing here stops at the
//! first one. This module builds no runtime objects: `engine::compile` does that.

pub mod error;
pub mod interpolate;
pub mod locate;
pub mod spec;
pub mod suggest;
mod validate;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use error::{ConfigError, ConfigErrors, Problems};
pub use interpolate::EnvLookup;
use interpolate::{At, Substitution, interpolate};
use locate::{Limits, Locator, Refused, Spot};
use spec::{AdaptorSpec, AuthSpec, EndpointSpec, SettingsSpec, WorkflowSpec};
pub use validate::hook_path;

/// One parsed file: its name, where it came from, and what it says.
#[derive(Debug, Clone)]
pub struct Doc<T> {
    /// The object's name (`name:` or the file stem).
    pub name: String,
    /// Path relative to the configuration folder, e.g. `endpoints/hubspot.yaml`.
    pub file: String,
    /// The parsed contents.
    pub spec: T,
    locator: Locator,
    /// Paths of the values that took something from the environment.
    interpolated: HashSet<String>,
}

impl<T> Doc<T> {
    /// Whether the value at `path` came (at least partly) from the environment.
    pub fn from_env(&self, path: &str) -> bool {
        self.interpolated.contains(path)
    }

    /// An error about the value at `path` (e.g. `actions[1].endpoint`) of this file.
    pub fn error_at(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            spot: self.locator.value(path),
            message: message.into(),
        }
    }

    /// Where the key that ends `path` is written, if it is.
    pub(crate) fn key_spot(&self, path: &str) -> Option<Spot> {
        self.locator.key(path)
    }

    /// An error about the key that ends `path` (e.g. `auth.tokn`).
    pub fn error_at_key(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            spot: self.locator.key(path).or_else(|| self.locator.value(path)),
            message: message.into(),
        }
    }
}

/// A configuration folder, parsed: every file that could be read, by kind.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The folder it was read from.
    pub dir: PathBuf,
    /// adaptors/*.yaml, sorted by file name.
    pub adaptors: Vec<Doc<AdaptorSpec>>,
    /// endpoints/*.yaml, sorted by file name.
    pub endpoints: Vec<Doc<EndpointSpec>>,
    /// workflows/*.yaml, sorted by file name.
    pub workflows: Vec<Doc<WorkflowSpec>>,
    /// switchboard.yaml, when there is one.
    pub settings: Option<Doc<SettingsSpec>>,
    /// Values that must never appear in any output: auth and signing values, and
    /// everything substituted from a secret-looking variable (`*TOKEN*`, `*KEY*`, …).
    pub secrets: Vec<String>,
    /// Names of files that exist but could not be parsed, by kind: references to them are
    /// not reported again as unknown.
    pub unreadable: Unreadable,
}

/// Names of files that exist but could not be parsed.
#[derive(Debug, Clone, Default)]
pub struct Unreadable {
    /// Adaptor names.
    pub adaptors: HashSet<String>,
    /// Endpoint names.
    pub endpoints: HashSet<String>,
    /// Workflow names.
    pub workflows: HashSet<String>,
}

/// Reads and checks every file of the configuration in `dir`, recording problems.
pub fn read(dir: &Path, env: EnvLookup, problems: &mut Problems) -> Config {
    let mut config = Config {
        dir: dir.to_path_buf(),
        ..Config::default()
    };
    let folders = ["adaptors", "endpoints", "workflows"];
    if !dir.is_dir() {
        problems.error(ConfigError {
            file: dir.display().to_string(),
            spot: None,
            message: "configuration folder not found".into(),
        });
        return config;
    }
    if folders.iter().all(|f| !dir.join(f).is_dir()) {
        problems.error(ConfigError {
            file: dir.display().to_string(),
            spot: None,
            message: "no adaptors/, endpoints/ or workflows/ folder here: is this a switchboard configuration? (see --config)".into(),
        });
        return config;
    }
    let mut substitutions = Vec::new();
    config.adaptors = read_kind(
        dir,
        "adaptors",
        env,
        problems,
        &mut substitutions,
        &mut config.unreadable.adaptors,
    );
    config.endpoints = read_kind(
        dir,
        "endpoints",
        env,
        problems,
        &mut substitutions,
        &mut config.unreadable.endpoints,
    );
    config.workflows = read_kind(
        dir,
        "workflows",
        env,
        problems,
        &mut substitutions,
        &mut config.unreadable.workflows,
    );
    config.settings = read_settings(dir, env, problems, &mut substitutions);
    for doc in &config.adaptors {
        validate::adaptor(doc, problems);
    }
    for doc in &config.endpoints {
        validate::endpoint(doc, problems);
    }
    for doc in &config.workflows {
        validate::workflow(doc, problems);
    }
    config.secrets = collect_secrets(&config.endpoints, &substitutions);
    config
}

/// The settings file at the configuration folder's root.
pub const SETTINGS_FILE: &str = "switchboard.yaml";

/// Reads `switchboard.yaml` when it exists; its errors are located like any file's.
fn read_settings(
    dir: &Path,
    env: EnvLookup,
    problems: &mut Problems,
    substitutions: &mut Vec<Substitution>,
) -> Option<Doc<SettingsSpec>> {
    let path = dir.join(SETTINGS_FILE);
    if !path.is_file() {
        return None;
    }
    read_doc::<SettingsSpec>(
        &path,
        SETTINGS_FILE.to_string(),
        "switchboard".to_string(),
        env,
        problems,
        substitutions,
    )
}

/// The largest configuration file read. Configurations are written by people; a bigger
/// file is a mistake (or data that belongs elsewhere) and would only cost memory.
pub const MAX_FILE_SIZE: u64 = 4 << 20;

/// How large a file may grow once its aliases (`*name`) are expanded: a few aliases of a
/// large anchor would otherwise build gigabytes from a small file.
pub const MAX_EXPANDED_SIZE: u64 = 2 * MAX_FILE_SIZE;

/// How deep the collections of a file may nest: as deep as event data may.
pub const MAX_DEPTH: usize = 64;

/// Reads at most `limit` bytes of UTF-8 text from `path`; `Ok(None)` when there is more.
/// Reading stops at the limit, so a device such as /dev/zero costs no more than a file.
pub(crate) fn read_limited(path: &Path, limit: u64) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(None);
    }
    String::from_utf8(bytes).map(Some).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Reads the files of one kind, sorted by name; names must be unique within the kind.
fn read_kind<T: DeserializeOwned + NamedSpec>(
    dir: &Path,
    kind: &str,
    env: EnvLookup,
    problems: &mut Problems,
    substitutions: &mut Vec<Substitution>,
    unreadable: &mut HashSet<String>,
) -> Vec<Doc<T>> {
    let folder = dir.join(kind);
    let mut files = match std::fs::read_dir(&folder) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_yaml(p))
            .collect::<Vec<_>>(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    let mut docs: Vec<Doc<T>> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for path in files {
        let file = format!(
            "{kind}/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let stem = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(doc) = read_doc::<T>(
            &path,
            file.clone(),
            stem.clone(),
            env,
            problems,
            substitutions,
        ) else {
            unreadable.insert(stem);
            continue;
        };
        if let Some(&first) = by_name.get(&doc.name) {
            let first = &docs[first];
            let problem = doc.error_at(
                "name",
                format!(
                    "duplicate {} name {:?}: {} already uses it",
                    singular(kind),
                    doc.name,
                    first.file
                ),
            );
            problems.error(problem);
            continue;
        }
        by_name.insert(doc.name.clone(), docs.len());
        docs.push(doc);
    }
    docs
}

/// A short fingerprint of the configuration files in `dir` (names and bytes, before
/// `${VAR}` substitution): nodes of one cluster compare theirs to find one that differs.
pub fn fingerprint(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for kind in ["adaptors", "endpoints", "workflows"] {
        let Ok(entries) = std::fs::read_dir(dir.join(kind)) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_yaml(p))
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            hash.update(format!("{kind}/{name}\0").as_bytes());
            let text = read_limited(&path, MAX_FILE_SIZE).ok().flatten();
            hash.update(text.unwrap_or_default().as_bytes());
            hash.update(b"\0");
        }
    }
    if let Ok(Some(text)) = read_limited(&dir.join(SETTINGS_FILE), MAX_FILE_SIZE) {
        hash.update(format!("{SETTINGS_FILE}\0{text}\0").as_bytes());
    }
    let digest = hash.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn singular(kind: &str) -> &str {
    kind.strip_suffix('s').unwrap_or(kind)
}

/// A configuration file: `.yaml` or `.yml`, not hidden, and not a test file (which
/// `switchboard test` reads, beside the files it tests).
fn is_yaml(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let ext = path.extension().and_then(|e| e.to_str());
    !name.starts_with('.')
        && !is_test_file(path)
        && path.is_file()
        && matches!(ext, Some("yaml" | "yml"))
}

/// Whether `path` names a test file (`*.test.yaml` or `*.test.yml`).
pub fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.ends_with(".test.yaml") || name.ends_with(".test.yml")
}

/// Specs that may carry an explicit `name:`.
pub trait NamedSpec {
    /// The `name:` key, when written.
    fn explicit_name(&self) -> Option<&str>;
}

impl NamedSpec for AdaptorSpec {
    fn explicit_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}
impl NamedSpec for EndpointSpec {
    fn explicit_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}
impl NamedSpec for SettingsSpec {
    fn explicit_name(&self) -> Option<&str> {
        None
    }
}
impl NamedSpec for WorkflowSpec {
    fn explicit_name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}

/// Parses one file: YAML syntax, then `${VAR}`, then the typed spec, each error located.
fn read_doc<T: DeserializeOwned + NamedSpec>(
    path: &Path,
    file: String,
    stem: String,
    env: EnvLookup,
    problems: &mut Problems,
    substitutions: &mut Vec<Substitution>,
) -> Option<Doc<T>> {
    let fail = |problems: &mut Problems, spot: Option<Spot>, message: String| {
        problems.error(ConfigError {
            file: file.clone(),
            spot,
            message,
        })
    };
    let text = match read_limited(path, MAX_FILE_SIZE) {
        Ok(Some(text)) => text,
        Ok(None) => {
            fail(
                problems,
                None,
                format!(
                    "the file is larger than {} MiB: split it, or move data out of it",
                    MAX_FILE_SIZE >> 20
                ),
            );
            return None;
        }
        Err(e) => {
            fail(problems, None, format!("cannot read the file: {e}"));
            return None;
        }
    };
    // yaml-rust2 walks the text first: it stops where the tree grows too deep or, through
    // aliases, too large, where serde_yaml would first read or build all of it.
    let limits = Limits {
        depth: MAX_DEPTH,
        size: MAX_EXPANDED_SIZE,
    };
    let locator = match Locator::new(&text, limits) {
        Ok(locator) => locator,
        Err(Refused::TooDeep(spot)) => {
            let message = format!("collections nest more than {MAX_DEPTH} levels deep");
            fail(problems, Some(spot), message);
            return None;
        }
        Err(Refused::TooLarge(spot)) => {
            let message = format!(
                "aliases (*name) expand the file beyond {} MiB",
                MAX_EXPANDED_SIZE >> 20
            );
            fail(problems, Some(spot), message);
            return None;
        }
    };
    let mut value: serde_yaml::Value = match serde_yaml::from_str(&text) {
        Ok(value) => value,
        Err(e) => {
            let spot = e.location().map(|l| Spot {
                line: l.line(),
                col: l.column(),
            });
            // serde_yaml points a duplicate key at the start of its mapping; the walk
            // above knows where the key is written again.
            if let Some((spot, message)) = duplicate_key(&locator, &e.to_string()) {
                fail(problems, Some(spot), message);
                return None;
            }
            fail(problems, spot, yaml_message(&e));
            return None;
        }
    };
    if value.is_null() {
        fail(problems, None, "the file is empty".into());
        return None;
    }
    if !value.is_mapping() {
        fail(
            problems,
            Some(Spot { line: 1, col: 1 }),
            "expected a mapping of keys (key: value) at the top of the file".into(),
        );
        return None;
    }
    if let Err(e) = value.apply_merge() {
        fail(problems, None, format!("invalid merge key (<<): {e}"));
        return None;
    }
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut room = Some(MAX_FILE_SIZE as usize);
    interpolate(&mut value, At::Top, env, &mut room, &mut found, &mut errors);
    // An unset variable does not hide the file's other mistakes: reading goes on with
    // `${VAR}` left in place, and errors about that same value are dropped.
    for error in errors {
        problems.error_settling(ConfigError {
            file: file.clone(),
            spot: locator.value(&error.path),
            message: error.message,
        });
    }
    let interpolated = found.iter().map(|s| s.path.clone()).collect();
    substitutions.extend(found);
    // serde stops at the first error. Unknown keys are the common mistake and can be
    // removed safely, so report one, drop it, and read again: a file with several typos
    // reports them all (and then its first other error, if any), up to
    // MAX_UNKNOWN_KEYS, since each one costs a reading of the whole file.
    let mut value = value;
    let mut failed = false;
    let mut pruned_maps: Vec<String> = Vec::new();
    let mut last_unknown = None;
    let spec: T = loop {
        if pruned_maps.len() == MAX_UNKNOWN_KEYS {
            fail(
                problems,
                last_unknown,
                format!(
                    "more unknown keys may follow the first {MAX_UNKNOWN_KEYS}: fix these and validate again"
                ),
            );
            return None;
        }
        let e = match serde_path_to_error::deserialize(&value) {
            Ok(spec) if !failed => break spec,
            Ok(_) => return None,
            Err(e) => e,
        };
        failed = true;
        let path = path_text(e.path());
        let message = e.inner().to_string();
        let Some(key) = unknown_field(&message).map(str::to_string) else {
            // A key missing from a map we removed a misspelt key from is that same key:
            // the user will fix the spelling; saying it is missing too is noise.
            if message.starts_with("missing field") && pruned_maps.contains(&path) {
                return None;
            }
            if let Some((spot, message)) = duplicate_key(&locator, &message) {
                fail(problems, Some(spot), message);
                return None;
            }
            let message = match unknown_variant(&message) {
                Some(variant) => {
                    let hint = suggest::did_you_mean(variant, expected_fields(&message));
                    format!("{message}{hint}")
                }
                None => message,
            };
            let message = if path.is_empty() {
                message
            } else {
                format!("{path}: {message}")
            };
            fail(problems, locator.value(&path), message);
            return None;
        };
        // serde_path_to_error includes the key in the path, except inside tagged enums,
        // where the path stops at the enum.
        let (map, key_path) = match path.strip_suffix(key.as_str()) {
            Some(parent) if parent.is_empty() || parent.ends_with('.') => {
                (parent.trim_end_matches('.').to_string(), path.clone())
            }
            _ => (path.clone(), locate::join_key(&path, &key)),
        };
        let spot = locator.key(&key_path).or_else(|| locator.value(&map));
        pruned_maps.push(map.clone());
        // A likely typo gets its correction instead of the list of every key.
        let message = match suggest::closest(&key, expected_fields(&message)) {
            Some(near) => format!("unknown field `{key}` (did you mean `{near}`?)"),
            None => message,
        };
        let shown = if map.is_empty() {
            message
        } else {
            format!("{map}: {message}")
        };
        fail(problems, spot, shown);
        last_unknown = spot;
        if !remove_key(&mut value, e.path(), &key) {
            return None;
        }
    };
    let name = spec.explicit_name().map(str::to_string).unwrap_or(stem);
    Some(Doc {
        name,
        file,
        spec,
        locator,
        interpolated,
    })
}

/// serde_yaml's "duplicate entry" (at the start of the mapping, or of the file) as the
/// key written again, where it is.
fn duplicate_key(locator: &Locator, message: &str) -> Option<(Spot, String)> {
    let dup = locator.duplicate()?;
    if !message.contains("duplicate entry with key") {
        return None;
    }
    let first = dup
        .first
        .map(|s| format!(" (first written at line {})", s.line))
        .unwrap_or_default();
    Some((
        dup.at,
        format!("duplicate key `{}`{first}: keep one", dup.key),
    ))
}

/// How many unknown keys of one file are reported before the reading stops.
const MAX_UNKNOWN_KEYS: usize = 20;

/// Removes `key` from the map at `path` (or, inside a tagged enum, the map the path ends
/// at); false if there is no such key, so the caller stops instead of looping.
fn remove_key(value: &mut serde_yaml::Value, path: &serde_path_to_error::Path, key: &str) -> bool {
    use serde_path_to_error::Segment;
    let mut node = value;
    let segments: Vec<&Segment> = path.iter().collect();
    let last_is_key = matches!(segments.last(), Some(Segment::Map { key: k }) if k == key);
    let walk = if last_is_key {
        &segments[..segments.len() - 1]
    } else {
        &segments[..]
    };
    for segment in walk {
        let next = match segment {
            Segment::Map { key } => node.get_mut(key.as_str()),
            Segment::Seq { index } => node.get_mut(*index),
            Segment::Enum { .. } | Segment::Unknown => Some(node),
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    node.as_mapping_mut()
        .and_then(|m| m.shift_remove(key))
        .is_some()
}

/// serde_yaml's message without its own " at line L column C" (we print the position
/// first); a second position, of the enclosing collection, becomes "that starts at line L".
pub(crate) fn yaml_message(error: &serde_yaml::Error) -> String {
    let message = error.to_string();
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    let mut first = true;
    while let Some(at) = rest.find(" at line ") {
        let after = &rest[at + " at line ".len()..];
        let line_len = after.bytes().take_while(u8::is_ascii_digit).count();
        let Some(col) = after[line_len..].strip_prefix(" column ") else {
            break;
        };
        let col_len = col.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..at]);
        if !first {
            out.push_str(" that starts at line ");
            out.push_str(&after[..line_len]);
        }
        first = false;
        rest = &col[col_len..];
    }
    out.push_str(rest);
    out
}

/// The key named by serde's "unknown field `x`, expected …" message.
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(&rest[..rest.find('`')?])
}

/// The value named by serde's "unknown variant `x`, expected …" message.
fn unknown_variant(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown variant `")?;
    Some(&rest[..rest.find('`')?])
}

/// The names serde lists after "expected" in an unknown-field message.
fn expected_fields(message: &str) -> impl Iterator<Item = &str> {
    let list = message
        .split_once(", expected")
        .map_or("", |(_, list)| list);
    list.split('`').skip(1).step_by(2)
}

/// A serde_path_to_error path as `a.b[1].c` (the locator's form).
pub(crate) fn path_text(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out = locate::join_index(&out, *index),
            Segment::Map { key } => out = locate::join_key(&out, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// Values shorter than this that come from the environment are not masked outside `auth`:
/// masking "8080" or "true" everywhere would garble logs without protecting anything.
const SHORTEST_SECRET: usize = 4;

/// The values to mask: everything that came from the environment (secrets come
/// only from there), and every credential of an `auth` or `signing` block, wherever written.
/// Defaults written in the files are not secret; neither is a Basic auth user name (but
/// the pair `user:password` is, from `auth` or from a URL, for its base64 spellings).
fn collect_secrets(endpoints: &[Doc<EndpointSpec>], found: &[Substitution]) -> Vec<String> {
    let mut secrets: Vec<String> = found
        .iter()
        .filter(|s| s.from_env && s.value.chars().count() >= SHORTEST_SECRET)
        .map(|s| s.value.clone())
        .collect();
    for doc in endpoints {
        match &doc.spec.auth {
            Some(AuthSpec::Bearer { token }) => secrets.push(token.clone()),
            Some(AuthSpec::Basic { username, password }) => {
                secrets.push(password.clone());
                // What the header carries (base64 of it: the redactor's spellings).
                secrets.push(format!("{username}:{password}"));
            }
            Some(AuthSpec::Header { value, .. }) => secrets.push(value.clone()),
            Some(AuthSpec::Query { params }) => secrets.extend(params.values().cloned()),
            Some(AuthSpec::Signature { secret }) => secrets.push(secret.clone()),
            Some(AuthSpec::Oauth2 {
                client_id,
                client_secret,
                refresh_token,
                ..
            }) => {
                secrets.push(client_secret.clone());
                secrets.push(format!("{client_id}:{client_secret}"));
                secrets.extend(refresh_token.iter().cloned());
            }
            None => {}
        }
        if let Some(signing) = &doc.spec.signing {
            secrets.push(signing.secret.clone());
        }
        // A password in the URL (`https://user:pass@host/`) is sent as Basic credentials
        // (base64 of "user:pass", decoded): a receiver may echo them back.
        if let Some(url) = doc.spec.url.as_deref()
            && let Ok(url) = url::Url::parse(url)
            && let Some(password) = url.password()
        {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            secrets.push(format!("{}:{}", decode(url.username()), decode(password)));
        }
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort();
    secrets.dedup();
    secrets
}
