//! The `switchboard` command line: parses flags, calls the library, maps results to exit
//! codes. Nothing else lives here.
#![forbid(unsafe_code)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use switchboard::commands::{self, Output, logs};
use switchboard::dispatch::NetworkPolicy;
use switchboard::schema::{self, Kind};
use switchboard::store::{DeliveryId, LogQuery, Outcome};

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
    /// Process events now: accept them into the data folder, deliver to every endpoint their
    /// workflows name, retry by each endpoint's schedule, log every attempt, then exit.
    ///
    /// Waits until each delivery is delivered or failed, or until its next retry is more
    /// than --wait away; those stay queued in the data folder for `serve` to finish.
    /// Exit code 0 when nothing failed, 4 when a delivery failed, 1 on bad input.
    Send {
        /// Configuration folder, holding adaptors/, endpoints/ and workflows/.
        #[arg(
            long,
            short,
            default_value = ".",
            env = "SWITCHBOARD_CONFIG",
            value_name = "DIR"
        )]
        config: PathBuf,
        #[command(flatten)]
        data: DataArg,
        /// Event file: an envelope, a raw payload (with --type), a JSON array of envelopes, or
        /// NDJSON. "-" reads standard input.
        #[arg(long, short, value_name = "FILE")]
        event: String,
        /// Event type of a raw payload.
        #[arg(long = "type", short, value_name = "T")]
        kind: Option<String>,
        /// Leave a delivery queued when its next retry is further away than this.
        #[arg(long, default_value = "30s", value_parser = duration, value_name = "DUR")]
        wait: std::time::Duration,
        /// Purge connect log entries older than this.
        #[arg(long, default_value = "30d", env = "SWITCHBOARD_RETENTION", value_parser = duration, value_name = "DUR")]
        retention: std::time::Duration,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Search the connect log: every attempt, newest first.
    Logs {
        #[command(subcommand)]
        show: Option<LogsCommand>,
        #[command(flatten)]
        data: DataArg,
        #[command(flatten)]
        filter: LogFilter,
        /// At most this many entries.
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
        /// Print a JSON array of entries (SPEC §6).
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV with a header row.
        #[arg(long)]
        csv: bool,
        /// Keep printing new entries as they are recorded (Ctrl-C to stop).
        #[arg(long, short)]
        follow: bool,
    },
    /// Send deliveries again: by delivery id (or log entry id), or every failed one.
    Replay {
        /// Configuration folder, holding adaptors/, endpoints/ and workflows/.
        #[arg(
            long,
            short,
            default_value = ".",
            env = "SWITCHBOARD_CONFIG",
            value_name = "DIR"
        )]
        config: PathBuf,
        #[command(flatten)]
        data: DataArg,
        /// Delivery ids or connect log entry ids.
        #[arg(value_name = "ID", required_unless_present = "failed")]
        ids: Vec<String>,
        /// Replay every delivery that ended failed (narrow with --endpoint and --since).
        #[arg(long)]
        failed: bool,
        /// With --failed: only this endpoint's deliveries.
        #[arg(long, requires = "failed", value_name = "E")]
        endpoint: Option<String>,
        /// With --failed: only deliveries that failed since this duration ago or time.
        #[arg(long, requires = "failed", value_name = "DUR|TIME")]
        since: Option<String>,
        /// Leave a delivery queued when its next retry is further away than this.
        #[arg(long, default_value = "30s", value_parser = duration, value_name = "DUR")]
        wait: std::time::Duration,
        #[command(flatten)]
        network: NetworkArgs,
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

#[derive(Subcommand, Debug)]
enum LogsCommand {
    /// One entry in full: the exact request, the response, the error and what was captured.
    /// Given a delivery id, every attempt of that delivery.
    Show {
        /// A connect log entry id or a delivery id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
struct DataArg {
    /// Data folder: the queue and the connect log (sled).
    #[arg(
        long = "data",
        short = 'd',
        default_value = "./data",
        env = "SWITCHBOARD_DATA",
        value_name = "DIR",
        global = true
    )]
    dir: PathBuf,
}

#[derive(Args, Debug)]
struct LogFilter {
    /// Only this endpoint.
    #[arg(long, value_name = "E")]
    endpoint: Option<String>,
    /// Only this workflow.
    #[arg(long, value_name = "W")]
    workflow: Option<String>,
    /// Only this outcome: delivered, retrying, failed or skipped.
    #[arg(long, value_name = "O", value_parser = Outcome::parse)]
    outcome: Option<Outcome>,
    /// Only entries whose audit keys (phone in any spelling, lead id, call id) or event id match.
    #[arg(long, short, value_name = "TEXT")]
    search: Option<String>,
    /// Only this delivery's attempts.
    #[arg(long, value_name = "ID")]
    delivery: Option<String>,
    /// Entries since a duration ago (1h, 7d) or a time (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_name = "DUR|TIME")]
    since: Option<String>,
    /// Entries until a time (RFC 3339 or YYYY-MM-DD, meaning its end).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

#[derive(Args, Debug)]
struct NetworkArgs {
    /// Only send to these address ranges (repeatable; default: anywhere not denied).
    #[arg(long = "allow-outbound", value_name = "CIDR", env = "SWITCHBOARD_ALLOW_OUTBOUND", value_delimiter = ',', value_parser = cidr)]
    allow: Vec<ipnet::IpNet>,
    /// Never send to these address ranges, besides the default 169.254.0.0/16, fe80::/10
    /// and fd00:ec2::254/128 (repeatable).
    #[arg(long = "deny-outbound", value_name = "CIDR", env = "SWITCHBOARD_DENY_OUTBOUND", value_delimiter = ',', value_parser = cidr)]
    deny: Vec<ipnet::IpNet>,
}

impl NetworkArgs {
    fn policy(&self) -> NetworkPolicy {
        NetworkPolicy::new(&self.allow, &self.deny)
    }
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    switchboard::engine::units::parse_duration(text)
}

fn cidr(text: &str) -> Result<ipnet::IpNet, String> {
    switchboard::engine::compile::parse_cidr(text)
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

#[tokio::main]
async fn main() -> ExitCode {
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
        Command::Send {
            config,
            data,
            event,
            kind,
            wait,
            retention,
            network,
        } => match read_input(&event) {
            Ok(text) => {
                commands::deliver::send(commands::deliver::SendArgs {
                    config: &config,
                    data: &data.dir,
                    source: &event,
                    text: &text,
                    kind: kind.as_deref(),
                    wait,
                    policy: network.policy(),
                    retention,
                })
                .await
            }
            Err(message) => Output {
                stderr: format!("error: {message}\n"),
                code: 1,
                ..Output::default()
            },
        },
        Command::Logs {
            show: Some(LogsCommand::Show { id, json }),
            data,
            ..
        } => logs::show(&data.dir, &id, json),
        Command::Logs {
            show: None,
            data,
            filter,
            limit,
            json,
            csv,
            follow,
        } => {
            let format = if json {
                logs::Format::Json
            } else if csv {
                logs::Format::Csv
            } else {
                logs::Format::Table
            };
            match log_query(filter, limit) {
                Ok(query) if follow => logs::follow(&data.dir, query, format),
                Ok(query) => logs::run(&data.dir, &query, format),
                Err(message) => Output {
                    stderr: format!("error: {message}\n"),
                    code: 1,
                    ..Output::default()
                },
            }
        }
        Command::Replay {
            config,
            data,
            ids,
            failed,
            endpoint,
            since,
            wait,
            network,
        } => {
            let since = match since
                .map(|s| logs::parse_since(&s, chrono::Utc::now()))
                .transpose()
            {
                Ok(since) => since,
                Err(message) => {
                    eprintln!("error: {message}");
                    return ExitCode::from(1);
                }
            };
            commands::deliver::replay(commands::deliver::ReplayArgs {
                config: &config,
                data: &data.dir,
                ids,
                failed,
                endpoint,
                since,
                wait,
                policy: network.policy(),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            })
            .await
        }
        Command::Schema { kind, out } => schema_command(kind, out),
    };
    print!("{}", output.stdout);
    eprint!("{}", output.stderr);
    ExitCode::from(u8::try_from(output.code).unwrap_or(1))
}

fn log_query(filter: LogFilter, limit: usize) -> Result<LogQuery, String> {
    let now = chrono::Utc::now();
    Ok(LogQuery {
        endpoint: filter.endpoint,
        workflow: filter.workflow,
        outcome: filter.outcome,
        delivery: filter.delivery.map(DeliveryId::new),
        search: filter.search,
        since: filter
            .since
            .map(|s| logs::parse_since(&s, now))
            .transpose()?,
        until: filter.until.map(|s| logs::parse_until(&s)).transpose()?,
        before: None,
        after: None,
        limit,
    })
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
