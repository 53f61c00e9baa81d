//! `${VAR}` and `${VAR:-default}` in YAML string values.
//!
//! Runs on the parsed YAML tree, never on the raw text, so a value from the environment
//! cannot change the structure of a file (a `:` or a newline in a token stays inside its
//! string). `$${VAR}` writes a literal `${VAR}`. When `VAR` is unset and `VAR_FILE` names a
//! file, the file's contents (without the trailing newline) are used: the Docker/Kubernetes
//! secrets convention.

use std::path::Path;

use serde_yaml::Value;

use super::locate::{join_index, join_key};

/// Reads an environment variable; tests pass their own instead of the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One substitution that happened: which variable, where, and the value it gave.
#[derive(Debug, Clone)]
pub struct Substitution {
    /// Variable name, e.g. `HUBSPOT_TOKEN`.
    pub var: String,
    /// Path of the string it was substituted into.
    pub path: String,
    /// The substituted text.
    pub value: String,
    /// Whether it came from the environment (or a file it names), not from a default
    /// written in the configuration.
    pub from_env: bool,
}

/// A problem with a `${...}` reference, at `path`.
#[derive(Debug, Clone)]
pub struct InterpolationError {
    /// Path of the string holding the reference.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Where a value is in the file. It is written out as a path only where something is
/// recorded: a path string for every value would repeat a long key once per value below it.
#[derive(Clone, Copy)]
pub enum At<'a> {
    /// The top of the file.
    Top,
    /// The value of a map's key.
    Key(&'a At<'a>, &'a Value),
    /// An item of a sequence.
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    /// The path, as the locator reads it (`actions[1].endpoint`).
    pub fn path(&self) -> String {
        match self {
            At::Top => String::new(),
            At::Key(up, key) => join_key(&up.path(), &key_text(key)),
            At::Index(up, index) => join_index(&up.path(), *index),
        }
    }
}

/// Replaces every `${...}` reference in the string values of `value`, recording what was
/// substituted and every reference that could not be resolved.
///
/// `room` is how many bytes substitutions may add to the file in all (their values and
/// the paths they are recorded at); once one does not fit, it becomes `None` and the rest
/// is left as written (one error says so), so a long value referred to a million times
/// cannot fill the memory.
pub fn interpolate(
    value: &mut Value,
    at: At,
    env: EnvLookup,
    room: &mut Option<usize>,
    found: &mut Vec<Substitution>,
    errors: &mut Vec<InterpolationError>,
) {
    if room.is_none() {
        return;
    }
    match value {
        Value::String(text) if text.contains('$') => {
            let path = at.path();
            match expand(text, &path, env, room, found) {
                Ok(expanded) => *text = expanded,
                Err(message) => errors.push(InterpolationError { path, message }),
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, At::Index(&at, i), env, room, found, errors);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                interpolate(item, At::Key(&at, key), env, room, found, errors);
            }
        }
        Value::Tagged(tagged) => interpolate(&mut tagged.value, at, env, room, found, errors),
        _ => {}
    }
}

/// A mapping key as text, for paths.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "?".into(),
    }
}

fn expand(
    text: &str,
    path: &str,
    env: EnvLookup,
    room: &mut Option<usize>,
    found: &mut Vec<Substitution>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(escaped) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body
            .find('}')
            .ok_or_else(|| format!("unclosed \"${{\" in {text:?}: write ${{NAME}}"))?;
        // ${NAME:-default}: the default when NAME is unset or empty (as in the shell);
        // ${NAME-default}: only when it is unset.
        let inner = &body[..end];
        let (name, default, empty_too) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default), true),
            None => match inner.split_once('-') {
                Some((name, default)) => (name, Some(default), false),
                None => (inner, None, false),
            },
        };
        if !valid_name(name) {
            return Err(format!(
                "invalid variable name {name:?} in {text:?}: use letters, digits and _"
            ));
        }
        let (value, from_env) = match (lookup(name, env)?, default) {
            (Some(value), Some(default)) if value.is_empty() && empty_too => {
                (default.to_string(), false)
            }
            (Some(value), _) => (value, true),
            (None, Some(default)) => (default.to_string(), false),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set (set it, or write ${{{name}:-default}})"
                ));
            }
        };
        let cost = value.len() + path.len();
        match room {
            Some(left) if cost <= *left => *left -= cost,
            _ => {
                *room = None;
                return Err(format!(
                    "substitutions add more than {} MiB to this file (at ${{{name}}}); values this large do not belong in a configuration",
                    super::MAX_FILE_SIZE >> 20
                ));
            }
        }
        found.push(Substitution {
            var: name.to_string(),
            path: path.to_string(),
            value: value.clone(),
            from_env,
        });
        out.push_str(&value);
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup(name: &str, env: EnvLookup) -> Result<Option<String>, String> {
    if let Some(value) = env(name) {
        return Ok(Some(value));
    }
    let file_var = format!("{name}_FILE");
    let Some(file) = env(&file_var) else {
        return Ok(None);
    };
    match super::read_limited(Path::new(&file), MAX_SECRET_FILE) {
        Ok(Some(text)) => Ok(Some(text.trim_end_matches(['\n', '\r']).to_string())),
        Ok(None) => Err(format!(
            "{name} is read from the file named by {file_var} ({file}), which holds more than {} KiB: is it the right file?",
            MAX_SECRET_FILE >> 10
        )),
        Err(e) => Err(format!(
            "{name} is read from the file named by {file_var} ({file}), which cannot be read: {e}"
        )),
    }
}

/// The largest secret file read (`VAR_FILE`): tokens, passwords and keys are far smaller,
/// and reading stops here, so naming /dev/zero or a log file fails at once.
pub const MAX_SECRET_FILE: u64 = 64 << 10;

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cr:et".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, String> {
        expand(text, "x", &env, &mut Some(1000), &mut Vec::new())
    }

    #[test]
    fn substitutes_defaults_and_escapes() {
        assert_eq!(run("Bearer ${TOKEN}").as_deref(), Ok("Bearer s3cr:et"));
        assert_eq!(run("${MISSING:-fallback}").as_deref(), Ok("fallback"));
        assert_eq!(run("${EMPTY:-fallback}").as_deref(), Ok("fallback"));
        assert_eq!(run("${EMPTY-fallback}").as_deref(), Ok(""));
        assert_eq!(run("${MISSING-fallback}").as_deref(), Ok("fallback"));
        assert_eq!(
            run("$${TOKEN} costs $5").as_deref(),
            Ok("${TOKEN} costs $5")
        );
    }

    #[test]
    fn explains_what_is_wrong() {
        assert_eq!(
            run("${MISSING}").unwrap_err(),
            "environment variable MISSING is not set (set it, or write ${MISSING:-default})"
        );
        assert!(run("${TOKEN").unwrap_err().starts_with("unclosed"));
        assert!(
            run("${1X}")
                .unwrap_err()
                .starts_with("invalid variable name")
        );
    }

    #[test]
    fn reads_secrets_from_files_named_by_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let file_name = file.display().to_string();
        let env = move |name: &str| (name == "API_KEY_FILE").then(|| file_name.clone());
        let mut found = Vec::new();
        assert_eq!(
            expand(
                "${API_KEY}",
                "auth.token",
                &env,
                &mut Some(1000),
                &mut found
            )
            .as_deref(),
            Ok("from-file")
        );
        assert_eq!(found[0].var, "API_KEY");
    }
}
