//! The `switchboard` command line: parses flags, calls the library, maps results to exit
//! codes. Nothing else lives here.
#![forbid(unsafe_code)]

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

/// mimalloc: the engine allocates many small strings per event, and glibc's allocator was a
/// third of its time (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use switchboard::commands::{self, Output, logs};
use switchboard::dispatch::NetworkPolicy;
use switchboard::schema::Kind;
use switchboard::store::{DeliveryId, Location, LogQuery, Outcome};

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
    /// Run the server: ingest events (POST /events, inbound /hooks/...), deliver them, and
    /// answer the admin API (/api/...), health (/healthz, /readyz) and /metrics.
    ///
    /// SIGHUP reloads the configuration (one with errors is refused and the running one
    /// stays); SIGINT/SIGTERM stop accepting, finish requests and attempts, and flush.
    Serve {
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
        /// Address to listen on. Anything but loopback needs an API token.
        #[arg(
            long,
            short,
            default_value = "127.0.0.1:8080",
            env = "SWITCHBOARD_LISTEN",
            value_name = "ADDR"
        )]
        listen: std::net::SocketAddr,
        /// Bearer token required by /events and /api/* (default: loopback clients only).
        #[arg(
            long,
            env = "SWITCHBOARD_API_TOKEN",
            hide_env_values = true,
            value_name = "TOKEN"
        )]
        api_token: Option<String>,
        /// Largest request body accepted: bytes, or with KiB/MiB.
        #[arg(long, default_value = "1MiB", env = "SWITCHBOARD_MAX_BODY", value_parser = size, value_name = "SIZE")]
        max_body: usize,
        /// Proxies whose X-Forwarded-For is believed (repeatable, or comma-separated).
        #[arg(long, env = "SWITCHBOARD_TRUST_PROXY", value_delimiter = ',', value_parser = cidr, value_name = "CIDR")]
        trust_proxy: Vec<ipnet::IpNet>,
        /// Purge connect log entries older than this.
        #[arg(long, default_value = "30d", env = "SWITCHBOARD_RETENTION", value_parser = duration, value_name = "DUR")]
        retention: std::time::Duration,
        /// A repeated event id within this window is acknowledged, not run again.
        #[arg(long, default_value = "24h", env = "SWITCHBOARD_DEDUPE_WINDOW", value_parser = duration, value_name = "DUR")]
        dedupe_window: std::time::Duration,
        /// How long a stop (SIGTERM, SIGINT) waits for requests and attempts in flight;
        /// connections still open then are closed, half-sent requests included.
        #[arg(long, default_value = "10s", env = "SWITCHBOARD_DRAIN", value_parser = duration, value_name = "DUR")]
        drain: std::time::Duration,
        /// Time a client has to send a request's headers (from connecting, or from the
        /// request's first byte on a kept-alive connection); then the connection is closed.
        #[arg(long, default_value = "10s", env = "SWITCHBOARD_HEADER_TIMEOUT", value_parser = duration, value_name = "DUR")]
        header_timeout: std::time::Duration,
        /// Time a client has to send a request's body, from its headers (then 408).
        #[arg(long, default_value = "30s", env = "SWITCHBOARD_BODY_TIMEOUT", value_parser = duration, value_name = "DUR")]
        body_timeout: std::time::Duration,
        /// How long a kept-alive connection may wait for its next request, and a client
        /// may leave its answer unread (less than 4 KiB taken), before the connection is
        /// closed.
        #[arg(long, default_value = "60s", env = "SWITCHBOARD_IDLE_TIMEOUT", value_parser = duration, value_name = "DUR")]
        idle_timeout: std::time::Duration,
        /// Connections served at once; more wait until one closes. Lowered at start to
        /// what the open-file limit allows (serve raises its soft limit to the hard limit
        /// and logs both figures).
        #[arg(
            long,
            default_value_t = 10_000,
            env = "SWITCHBOARD_MAX_CONNECTIONS",
            value_name = "N"
        )]
        max_connections: usize,
        /// Serve /metrics without the API token (for a scraper that cannot send one).
        #[arg(long, env = "SWITCHBOARD_PUBLIC_METRICS")]
        public_metrics: bool,
        /// This node's name, on every connect log entry it records (default:
        /// <hostname>-<pid>).
        #[arg(long, env = "SWITCHBOARD_NODE", value_name = "NAME")]
        node: Option<String>,
        /// Log lines as text or JSON.
        #[arg(
            long,
            value_enum,
            default_value = "text",
            env = "SWITCHBOARD_LOG_FORMAT"
        )]
        log_format: LogFormat,
        #[command(flatten)]
        network: NetworkArgs,
    },
    /// Run a receiver for trying configurations: prints every request it gets and answers
    /// with --status (the starter configuration sends to http://127.0.0.1:9000/contacts).
    Mock {
        /// Address to listen on.
        #[arg(long, short, default_value = "127.0.0.1:9000", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Status of answers: `N` for every request (default 200), or `/PATH=N` for requests
        /// whose path starts with /PATH (repeatable; the longest prefix wins).
        #[arg(long, value_name = "N|/PATH=N")]
        status: Vec<switchboard::server::mock::StatusRule>,
        /// Body of every answer, or @FILE for a file's contents (default: {"ok":true} for 2xx,
        /// {"error":"mock status N"} otherwise).
        #[arg(long, value_parser = switchboard::server::mock::read_body, value_name = "TEXT|@FILE")]
        body: Option<String>,
        /// A header added to every answer, as "Name: value" (repeatable).
        #[arg(long, value_name = "\"Name: value\"")]
        header: Vec<switchboard::server::mock::MockHeader>,
        /// Wait this long before answering.
        #[arg(long, default_value = "0s", value_parser = duration, value_name = "DUR")]
        delay: std::time::Duration,
        /// Print nothing.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a configuration and print every error, then every warning (with
    /// file:line:col); exit 1 on an error, or with --strict on a warning too.
    Validate {
        /// Fail (exit 1) on warnings too, e.g. in CI.
        #[arg(long)]
        strict: bool,
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
        /// A value an earlier step captured, for the steps that run after it:
        /// STEP.NAME=VALUE (repeatable; `find.contact_id=901`, `find.status=404`). VALUE is
        /// read as JSON when it parses (numbers, true, null), else as text. Steps without
        /// one are shown as if they captured nothing.
        #[arg(long = "capture", value_name = "STEP.NAME=VALUE", value_parser = capture)]
        captures: Vec<(String, String, serde_json::Value)>,
    },
    /// Run the configuration's tests (`*.test.yaml`): each test's event goes through the dry
    /// run and what it expects is compared with what would be sent. Sends nothing.
    ///
    /// Exit code 0 when every test passes, 1 when one fails, 2 when the configuration or a
    /// test file is invalid.
    Test {
        /// Configuration folder, holding adaptors/, endpoints/ and workflows/.
        #[arg(
            long,
            short,
            default_value = ".",
            env = "SWITCHBOARD_CONFIG",
            value_name = "DIR"
        )]
        config: PathBuf,
        /// Test files to run (default: every *.test.yaml in the configuration folder and in
        /// its adaptors/, endpoints/, workflows/ and tests/ folders).
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print JSON: {"passed", "failed", "tests": [{"file", "line", "name", "passed",
        /// "problems"}]}.
        #[arg(long)]
        json: bool,
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
        /// Print a JSON array of entries.
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
        /// Also send again the steps that run after these deliveries (down their chains):
        /// they wait for the new attempts and use what those capture.
        #[arg(long)]
        with_followers: bool,
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
    /// Print a shell completion script, generated from these flags.
    ///
    /// For bash, save it as /etc/bash_completion.d/switchboard; for zsh, as _switchboard in
    /// a folder on $fpath; for fish, as ~/.config/fish/completions/switchboard.fish.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these flags (read it with: switchboard man |
    /// man -l -).
    Man {
        /// Write switchboard.1 and one page per subcommand (switchboard-serve.1, …) here.
        #[arg(long, value_name = "DIR")]
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
    /// Where the queue and the connect log are: `sled:DIR` (the default, = --data DIR) or
    /// `postgres://user:password@host:port/db`, which any number of nodes can share.
    #[arg(
        long = "store",
        env = "SWITCHBOARD_STORE",
        value_name = "URL",
        hide_env_values = true,
        global = true
    )]
    store: Option<String>,
}

impl DataArg {
    /// The data folder and the store: `--store sled:DIR` is `--data DIR`. Read here rather
    /// than by clap, whose errors would repeat the URL, password and all.
    fn resolve(self) -> Result<(PathBuf, Location), Output> {
        let store = self.store.as_deref().map(Location::parse).transpose();
        match store {
            Ok(Some(Location::Sled(dir))) => Ok((dir.clone(), Location::Sled(dir))),
            Ok(Some(store)) => Ok((self.dir, store)),
            Ok(None) => Ok((self.dir.clone(), Location::Sled(self.dir))),
            Err(message) => Err(Output {
                stderr: format!("error: --store: {message}\n"),
                code: 2,
                ..Output::default()
            }),
        }
    }
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
    /// and fd00:ec2::254/128 (repeatable). 0.0.0.0/8 and :: (which reach the local host)
    /// are always refused, whatever --allow-outbound says.
    #[arg(long = "deny-outbound", value_name = "CIDR", env = "SWITCHBOARD_DENY_OUTBOUND", value_delimiter = ',', value_parser = cidr)]
    deny: Vec<ipnet::IpNet>,
}

impl NetworkArgs {
    fn policy(&self) -> NetworkPolicy {
        NetworkPolicy::new(&self.allow, &self.deny)
    }
}

/// `switchboard mock`: settings from the flags, then serve until stopped.
async fn mock(
    listen: std::net::SocketAddr,
    status: Vec<switchboard::server::mock::StatusRule>,
    body: Option<String>,
    header: Vec<switchboard::server::mock::MockHeader>,
    delay: std::time::Duration,
    quiet: bool,
) -> Output {
    use switchboard::server::mock;
    let failed = |stderr: String| Output {
        stderr,
        code: 1,
        ..Output::default()
    };
    let settings = match mock::MockSettings::new(status, body, header, delay, quiet) {
        Ok(settings) => settings,
        Err(e) => return failed(format!("error: {e}\n")),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => return failed(format!("error: cannot listen on {listen}: {e}\n")),
    };
    let bound = listener.local_addr().unwrap_or(listen);
    eprintln!(
        "switchboard mock: listening on http://{bound}, {}",
        settings.describe()
    );
    match mock::run(listener, settings).await {
        Ok(()) => Output::default(),
        Err(e) => failed(format!("error: {e}\n")),
    }
}

/// `--capture STEP.NAME=VALUE`: the step, the name, and the value (JSON if it parses).
fn capture(text: &str) -> Result<(String, String, serde_json::Value), String> {
    let (path, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not STEP.NAME=VALUE (e.g. find.contact_id=901)"))?;
    let (step, name) = path
        .split_once('.')
        .filter(|(s, n)| !s.is_empty() && !n.is_empty())
        .ok_or_else(|| format!("{path:?} is not STEP.NAME (e.g. find.contact_id)"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
    Ok((step.to_string(), name.to_string(), value))
}

fn duration(text: &str) -> Result<std::time::Duration, String> {
    switchboard::engine::units::parse_duration(text)
}

fn cidr(text: &str) -> Result<ipnet::IpNet, String> {
    switchboard::engine::compile::parse_cidr(text)
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `1048576`, `512KiB`, `1MiB`, `2MB`.
fn size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let n: usize = t[..digits]
        .parse()
        .map_err(|_| format!("invalid size {text:?}: write bytes or e.g. 512KiB, 1MiB"))?;
    let unit = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => {
            return Err(format!(
                "invalid size {text:?}: write bytes or e.g. 512KiB, 1MiB"
            ));
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs the server with checked settings.
async fn serve(settings: switchboard::server::Settings) -> Output {
    use switchboard::runtime::OpenError;
    use switchboard::server::{self, ServeError};
    let fail = |message: String| Output {
        stderr: format!("error: {message}\n"),
        code: 1,
        ..Output::default()
    };
    let settings = match settings.check() {
        Ok(settings) => settings,
        Err(message) => return fail(message),
    };
    let listen = settings.listen;
    let app = match server::App::open(settings).await {
        Ok(app) => app,
        Err(ServeError::Open(OpenError::Config(errors))) => {
            return Output {
                stderr: format!("{errors}\n"),
                code: 1,
                ..Output::default()
            };
        }
        Err(e) => return fail(e.to_string()),
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => return fail(format!("cannot listen on {listen}: {e}")),
    };
    match server::run(listener, app, std::future::pending()).await {
        Ok(()) => Output::default(),
        Err(e) => fail(e.to_string()),
    }
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
        Command::Serve {
            config,
            data,
            listen,
            api_token,
            max_body,
            trust_proxy,
            retention,
            dedupe_window,
            drain,
            header_timeout,
            body_timeout,
            idle_timeout,
            max_connections,
            public_metrics,
            node,
            log_format,
            network,
        } => {
            init_logging(log_format);
            let (data, store) = match data.resolve() {
                Ok(resolved) => resolved,
                Err(out) => return finish(out),
            };
            let mut settings = switchboard::server::Settings::new(config, data);
            settings.store = store;
            settings.listen = listen;
            settings.api_token = api_token;
            settings.max_body = max_body;
            settings.trust_proxy = trust_proxy;
            settings.policy = network.policy();
            settings.retention = retention;
            settings.dedupe_window = dedupe_window;
            settings.drain = drain;
            settings.timeouts = switchboard::server::listen::Timeouts {
                header: header_timeout,
                body: body_timeout,
                idle: idle_timeout,
            };
            settings.max_connections = max_connections;
            settings.public_metrics = public_metrics;
            if let Some(node) = node.filter(|n| !n.trim().is_empty()) {
                settings.node = node;
            }
            serve(settings).await
        }
        Command::Mock {
            listen,
            status,
            body,
            header,
            delay,
            quiet,
        } => mock(listen, status, body, header, delay, quiet).await,
        Command::Validate { config, strict } => commands::validate::run(&config, strict),
        Command::Render {
            config,
            event,
            kind,
            json,
            now,
            captures,
        } => match read_input(&event) {
            Ok(text) => commands::render::run(&commands::render::Args {
                config: &config,
                source: &event,
                text: &text,
                kind: kind.as_deref(),
                json,
                now,
                steps: commands::render::step_values(captures),
            }),
            Err(message) => Output {
                stderr: format!("error: {message}\n"),
                code: 1,
                ..Output::default()
            },
        },
        Command::Test {
            config,
            files,
            json,
        } => commands::test::run(&commands::test::Args {
            config: &config,
            files: &files,
            json,
        }),
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
                let (data, store) = match data.resolve() {
                    Ok(resolved) => resolved,
                    Err(out) => return finish(out),
                };
                commands::deliver::send(commands::deliver::SendArgs {
                    config: &config,
                    data: &data,
                    store: &store,
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
        } => {
            let (data, store) = match data.resolve() {
                Ok(resolved) => resolved,
                Err(out) => return finish(out),
            };
            logs::show(&data, &store, &id, json).await
        }
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
            let (data, store) = match data.resolve() {
                Ok(resolved) => resolved,
                Err(out) => return finish(out),
            };
            match log_query(filter, limit) {
                Ok(query) if follow => logs::follow(&data, &store, query, format).await,
                Ok(query) => logs::run(&data, &store, &query, format).await,
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
            with_followers,
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
            let (data, store) = match data.resolve() {
                Ok(resolved) => resolved,
                Err(out) => return finish(out),
            };
            commands::deliver::replay(commands::deliver::ReplayArgs {
                config: &config,
                data: &data,
                store: &store,
                ids,
                failed,
                endpoint,
                since,
                wait,
                policy: network.policy(),
                progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                with_followers,
            })
            .await
        }
        Command::Schema { kind, out } => {
            commands::schema::run(kind.map(Kind::from), out.as_deref())
        }
        Command::Completions { shell } => commands::manual::completions(Cli::command(), shell),
        Command::Man { out } => commands::manual::man(Cli::command(), out.as_deref()),
    };
    finish(output)
}

/// Prints what a command printed and exits with its code.
fn finish(output: Output) -> ExitCode {
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
