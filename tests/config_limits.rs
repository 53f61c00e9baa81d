//! Loading a hostile configuration, through the real `switchboard validate`: time grows
//! with the size of the files (a 64k-field adaptor, 256k values under one long key),
//! and every limit — file size, nesting depth, aliases, substitutions, secret files, hook
//! paths, retry schedules — is one located error, reported at once.
//!
//! The deadlines are generous (a debug build on a busy machine); what they catch is time
//! that grows with the square of the input, which took tens of seconds for these files.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ConfigDir, cli};

/// What `validate` printed and how it ended.
struct Run {
    success: bool,
    /// stdout and stderr, one after the other.
    text: String,
}

/// Runs `switchboard validate --config DIR` with `env` added; fails the test if it takes
/// longer than `limit`.
fn validate(dir: &Path, env: &[(&str, &str)], limit: Duration) -> Run {
    let out = tempfile::tempdir().expect("temp dir");
    let (stdout, stderr) = (out.path().join("stdout"), out.path().join("stderr"));
    let file = |path: &Path| Stdio::from(std::fs::File::create(path).expect("create"));
    let started = Instant::now();
    let mut child = cli()
        .args(["validate", "--config"])
        .arg(dir)
        .envs(env.iter().copied())
        .stdout(file(&stdout))
        .stderr(file(&stderr))
        .spawn()
        .expect("run switchboard");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("validate took more than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |path: &Path| std::fs::read_to_string(path).expect("read output");
    Run {
        success: status.success(),
        text: read(&stdout) + &read(&stderr),
    }
}

/// A configuration of one adaptor with `text`.
fn adaptor(text: &str) -> ConfigDir {
    ConfigDir::new(&[("adaptors/a.yaml", text)])
}

/// An adaptor with `extra_fields: {x: VALUE}`, for values of any shape.
fn extra(value: &str) -> ConfigDir {
    adaptor(&format!(
        "fields:\n  - from: a\n    to: b\nextra_fields:\n  x: {value}\n"
    ))
}

/// A bound far above what linear loading needs (3 s for the largest file, debug build, busy
/// machine) and far below what the quadratic loading took (13 to 40 s in a release build).
const QUICK: Duration = Duration::from_secs(30);

/// The error lines of a run that failed.
fn error_lines(run: &Run) -> Vec<&str> {
    assert!(!run.success, "validate should fail:\n{}", run.text);
    run.text
        .lines()
        .filter(|l| !l.starts_with("warning:") && !l.contains(" error"))
        .collect()
}

#[test]
fn an_adaptor_of_64k_fields_loads_in_linear_time() {
    let mut text = String::from("fields:\n");
    for i in 0..65_536 {
        writeln!(text, "  - from: f{i}\n    to: out.k{i}").unwrap();
    }
    let run = validate(adaptor(&text).path(), &[], QUICK);
    assert!(run.success, "{}", run.text);
}

#[test]
fn a_quarter_million_values_under_one_long_key_load_in_linear_time() {
    // Paths (`extra_fields.kkk…[123]`) are not written out per value.
    let key = "k".repeat(1 << 18);
    let items = vec!["a"; 1 << 18].join(",");
    let text =
        format!("fields:\n  - from: a\n    to: b\nextra_fields:\n  ? {key}\n  : [{items}]\n");
    let run = validate(adaptor(&text).path(), &[], QUICK);
    assert!(run.success, "{}", run.text);
}

#[test]
fn deep_nesting_is_refused_at_once() {
    let levels = 100_000;
    let sequences = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let maps = format!("{}b{}", "{a: ".repeat(levels), "}".repeat(levels));
    for value in [sequences, maps] {
        let run = validate(extra(&value).path(), &[], QUICK);
        let errors = error_lines(&run);
        assert_eq!(errors.len(), 1, "{}", run.text);
        assert!(
            errors[0].starts_with("adaptors/a.yaml:5:")
                && errors[0].ends_with(": collections nest more than 64 levels deep"),
            "{}",
            run.text
        );
    }
    // Block collections count too: `- - - x` is three sequences deep.
    let text = format!("fields:\n{}x\n", "- ".repeat(levels));
    let run = validate(adaptor(&text).path(), &[], QUICK);
    assert_eq!(
        error_lines(&run),
        ["adaptors/a.yaml:2:127: collections nest more than 64 levels deep"]
    );
}

#[test]
fn sixty_four_levels_are_allowed_and_sixty_five_are_not() {
    // The file's mapping, extra_fields and x's value: 62 sequences make 64 levels.
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let run = validate(extra(&nested(62)).path(), &[], QUICK);
    assert!(run.success, "{}", run.text);
    let run = validate(extra(&nested(63)).path(), &[], QUICK);
    assert_eq!(
        error_lines(&run),
        ["adaptors/a.yaml:5:68: collections nest more than 64 levels deep"]
    );
}

#[test]
fn aliases_cannot_grow_a_small_file_past_the_limits() {
    // A 1 MiB string repeated 16 times by aliases.
    let big = "x".repeat(1 << 20);
    let value = format!("[&big {big}, {}]", vec!["*big"; 16].join(", "));
    let run = validate(extra(&value).path(), &[], QUICK);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 1, "{}", run.text);
    assert!(
        errors[0].ends_with(": aliases (*name) expand the file beyond 8 MiB"),
        "{}",
        run.text
    );
    // Doubling at every level: 2^40 items from 40 lines.
    let mut text =
        String::from("fields:\n  - from: a\n    to: b\nextra_fields:\n  a0: &a0 [x, x]\n");
    for i in 1..40 {
        writeln!(text, "  a{i}: &a{i} [*a{}, *a{}]", i - 1, i - 1).unwrap();
    }
    let run = validate(adaptor(&text).path(), &[], QUICK);
    assert!(
        error_lines(&run)[0].ends_with(": aliases (*name) expand the file beyond 8 MiB"),
        "{}",
        run.text
    );
    // Aliases add their depth where they are used.
    let value = format!(
        "{{deep: &deep {0}{1}, again: {0}*deep{1}}}",
        "[".repeat(40),
        "]".repeat(40)
    );
    let run = validate(extra(&value).path(), &[], QUICK);
    assert!(
        error_lines(&run)[0].ends_with(": collections nest more than 64 levels deep"),
        "{}",
        run.text
    );
}

#[test]
fn files_over_4_mib_are_refused() {
    let text = format!("description: \"{}\"\nfields: []\n", "x".repeat(4 << 20));
    let run = validate(adaptor(&text).path(), &[], QUICK);
    assert_eq!(
        error_lines(&run),
        ["adaptors/a.yaml: the file is larger than 4 MiB: split it, or move data out of it"]
    );
}

#[test]
fn an_unknown_key_in_every_field_costs_one_reading_each_up_to_20() {
    let mut text = String::from("fields:\n");
    for i in 0..40_000 {
        writeln!(text, "  - from: a{i}\n    to: b{i}\n    tpyo: 1").unwrap();
    }
    let run = validate(adaptor(&text).path(), &[], QUICK);
    let errors = error_lines(&run);
    assert_eq!(errors.len(), 21, "{}", run.text);
    assert_eq!(
        errors[20],
        "adaptors/a.yaml:61:5: more unknown keys may follow the first 20: fix these and validate again"
    );
}

#[test]
fn substitutions_cannot_grow_a_file_past_4_mib() {
    let value = "v".repeat(100 << 10);
    let text = format!(
        "fields:\n  - from: a\n    to: b\nextra_fields:\n  x: [{}]\n",
        vec!["\"${BIG}\""; 50].join(", ")
    );
    let run = validate(adaptor(&text).path(), &[("BIG", &value)], QUICK);
    // 40 substitutions of 100 KiB fit; the 41st, at column 407, does not.
    assert_eq!(
        error_lines(&run),
        [
            "adaptors/a.yaml:5:407: substitutions add more than 4 MiB to this file (at ${BIG}); values this large do not belong in a configuration"
        ]
    );
}

/// An endpoint whose bearer token is `${API_TOKEN}`.
fn token_endpoint() -> ConfigDir {
    ConfigDir::new(&[(
        "endpoints/crm.yaml",
        "url: https://crm.example.com\nbody_template: \"{}\"\nauth:\n  type: bearer\n  token: ${API_TOKEN}\n",
    )])
}

#[test]
fn secret_files_are_read_up_to_64_kib() {
    let config = token_endpoint();
    let run = validate(config.path(), &[("API_TOKEN_FILE", "/dev/zero")], QUICK);
    assert_eq!(
        error_lines(&run),
        [
            "endpoints/crm.yaml:5:10: API_TOKEN is read from the file named by API_TOKEN_FILE (/dev/zero), which holds more than 64 KiB: is it the right file?"
        ]
    );
    let secrets = tempfile::tempdir().expect("temp dir");
    let large = secrets.path().join("large");
    std::fs::write(&large, vec![b'a'; (64 << 10) + 1]).unwrap();
    let run = validate(
        config.path(),
        &[("API_TOKEN_FILE", large.to_str().unwrap())],
        QUICK,
    );
    assert!(error_lines(&run)[0].contains("which holds more than 64 KiB"));
    let exact = secrets.path().join("exact");
    std::fs::write(&exact, vec![b'a'; 64 << 10]).unwrap();
    let run = validate(
        config.path(),
        &[("API_TOKEN_FILE", exact.to_str().unwrap())],
        QUICK,
    );
    assert!(run.success, "{}", run.text);
}

/// The lines `validate` prints for an inbound endpoint at `path`.
fn hook_at(path: &str) -> Run {
    let text = format!("direction: inbound\npath: {path}\nevent_type: lead\n");
    validate(
        ConfigDir::new(&[("endpoints/hook.yaml", &text)]).path(),
        &[],
        QUICK,
    )
}

#[test]
fn hook_paths_name_a_hook_plainly_under_hooks() {
    let dots = "must not contain . or .. parts (also not percent-encoded): name the hook plainly, e.g. /hooks/convolo";
    for (path, problem) in [
        ("/hooks/../api/logs", dots),
        ("/hooks/./x", dots),
        ("/hooks/x/..", dots),
        ("/hooks/%2e%2e/api/logs", dots),
        ("/hooks/.%2E/x", dots),
        (
            "'/hooks/a\\b'",
            "must not contain backslashes: separate its parts with /",
        ),
        (
            "/hooks/a%2Fb",
            "must not contain an encoded / or \\ (%2F, %5C)",
        ),
        (
            "/hooks/a%5cb",
            "must not contain an encoded / or \\ (%2F, %5C)",
        ),
        (
            "/hooks//",
            "must name the hook after /hooks/, e.g. /hooks/convolo",
        ),
        (
            "\"/hooks/a\\tb\"",
            "must not contain ?, #, spaces or control characters",
        ),
    ] {
        let written = path.trim_matches(['\'', '"']).replace("\\t", "\t");
        let run = hook_at(path);
        assert_eq!(
            error_lines(&run),
            [format!(
                "endpoints/hook.yaml:2:7: inbound path {written:?} {problem}"
            )],
            "for {path}"
        );
    }
}

#[test]
fn hook_paths_are_served_without_repeated_or_trailing_slashes() {
    let run = hook_at("/hooks//convolo/");
    assert!(run.success, "{}", run.text);
    assert!(
        run.text.contains(
            "warning: endpoints/hook.yaml:2:7: inbound path \"/hooks//convolo/\" is served as /hooks/convolo: give that to senders"
        ),
        "{}",
        run.text
    );
    let config = ConfigDir::new(&[
        (
            "endpoints/a.yaml",
            "direction: inbound\npath: /hooks/convolo\nevent_type: lead\n",
        ),
        (
            "endpoints/b.yaml",
            "direction: inbound\npath: /hooks//convolo/\nevent_type: lead\n",
        ),
    ]);
    let run = validate(config.path(), &[], QUICK);
    assert_eq!(
        error_lines(&run),
        ["endpoints/b.yaml:2:7: path /hooks/convolo is already used by inbound endpoint a"]
    );
}

/// The lines `validate` prints for an outbound endpoint retrying on `schedule`.
fn retrying(schedule: &str) -> Run {
    let text = format!(
        "url: https://crm.example.com\nbody_template: \"{{}}\"\nretry:\n  schedule: {schedule}\n"
    );
    validate(
        ConfigDir::new(&[("endpoints/crm.yaml", &text)]).path(),
        &[],
        QUICK,
    )
}

#[test]
fn retry_schedules_list_at_most_100_delays_of_1s_to_7d() {
    let run = retrying(&format!("[{}]", vec!["0s"; 100_000].join(", ")));
    assert_eq!(
        error_lines(&run),
        ["endpoints/crm.yaml:4:13: retry.schedule lists 100000 retries; at most 100 are allowed"]
    );
    let run = retrying("[5s, 0s, 500ms, 8d]");
    assert_eq!(
        error_lines(&run),
        [
            "endpoints/crm.yaml:4:18: a retry waits from 1s to 7d, not 0s",
            "endpoints/crm.yaml:4:22: a retry waits from 1s to 7d, not 500ms",
            "endpoints/crm.yaml:4:29: a retry waits from 1s to 7d, not 8d",
        ]
    );
    let run = retrying(&format!("[1s, {}7d]", "1h, ".repeat(98)));
    assert!(run.success, "{}", run.text);
}
