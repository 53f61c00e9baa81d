//! The `switchboard` command line: parses flags, calls the library, maps results to exit
//! codes. Nothing else lives here.
#![forbid(unsafe_code)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use switchboard::commands::{self, Output};
use switchboard::schema::{self, Kind};

/// switchboard: a webhook/adaptor engine for call-center events.
///
/// Integrators describe in YAML what gets sent (adaptors/), where it goes (endpoints/) and
/// when it fires (workflows/). switchboard evaluates events against that configuration and
/// builds the exact HTTP requests.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version, about, long_about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a configuration and print every error (with file:line:col); exit 1 if any.
    Validate {
        /// Configuration folder, holding adaptors/, endpoints/ and workflows/.
        #[arg(
            long,
            short,
            default_value = ".",
            env = "SWITCHBOARD_CONFIG",
            value_name = "DIR"
        )]
        config: PathBuf,
    },
    /// Dry run: which workflows match an event and why, and the exact requests that would
    /// be sent (secrets shown as ***). Sends nothing.
    Render {
        /// Configuration folder, holding adaptors/, endpoints/ and workflows/.
        #[arg(
            long,
            short,
            default_value = ".",
            env = "SWITCHBOARD_CONFIG",
            value_name = "DIR"
        )]
        config: PathBuf,
        /// Event file: an envelope {"type", "id", "data"}, a raw payload (with --type), a JSON
        /// array of them, or NDJSON. "-" reads standard input.
        #[arg(long, short, value_name = "FILE")]
        event: String,
        /// Event type of a raw payload (the file is then the event data itself).
        #[arg(long = "type", short, value_name = "T")]
        kind: Option<String>,
        /// Print JSON: {"event", "workflows": [{"name", "matched", "reasons"}], "requests":
        /// [{"workflow", "endpoint", "method", "url", "headers", "body"}]}.
        #[arg(long)]
        json: bool,
        /// Evaluate as if it were this time (RFC 3339), for `within`, `age` and received_at.
        #[arg(long, value_name = "TIME")]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Print the JSON Schema of the configuration files, for editors' YAML plugins.
    Schema {
        /// Only this kind's schema (default: one schema accepting any of the three).
        #[arg(long, value_enum)]
        kind: Option<SchemaKind>,
        /// Write adaptor.schema.json, endpoint.schema.json and workflow.schema.json here.
        #[arg(long, value_name = "DIR", conflicts_with = "kind")]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SchemaKind {
    Adaptor,
    Endpoint,
    Workflow,
}

impl From<SchemaKind> for Kind {
    fn from(kind: SchemaKind) -> Kind {
        match kind {
            SchemaKind::Adaptor => Kind::Adaptor,
            SchemaKind::Endpoint => Kind::Endpoint,
            SchemaKind::Workflow => Kind::Workflow,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = match cli.command {
        Command::Validate { config } => commands::validate::run(&config),
        Command::Render {
            config,
            event,
            kind,
            json,
            now,
        } => match read_input(&event) {
            Ok(text) => commands::render::run(&commands::render::Args {
                config: &config,
                source: &event,
                text: &text,
                kind: kind.as_deref(),
                json,
                now,
            }),
            Err(message) => Output {
                stderr: format!("error: {message}\n"),
                code: 1,
                ..Output::default()
            },
        },
        Command::Schema { kind, out } => schema_command(kind, out),
    };
    print!("{}", output.stdout);
    eprint!("{}", output.stderr);
    ExitCode::from(u8::try_from(output.code).unwrap_or(1))
}

/// Reads a file, or standard input for "-"; the error is one line naming the file.
fn read_input(path: &str) -> Result<String, String> {
    if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn schema_command(kind: Option<SchemaKind>, out: Option<PathBuf>) -> Output {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let mut output = Output::default();
    match (kind, out) {
        (_, Some(dir)) => {
            for kind in Kind::ALL {
                let path = dir.join(format!("{}.schema.json", kind.name()));
                if let Err(e) = std::fs::create_dir_all(&dir)
                    .and_then(|_| std::fs::write(&path, pretty(&schema::schema(kind))))
                {
                    output.stderr = format!("error: cannot write {}: {e}\n", path.display());
                    output.code = 1;
                    return output;
                }
                output
                    .stdout
                    .push_str(&format!("wrote {}\n", path.display()));
            }
        }
        (Some(kind), None) => output.stdout = pretty(&schema::schema(kind.into())),
        (None, None) => output.stdout = pretty(&schema::combined()),
    }
    output
}
