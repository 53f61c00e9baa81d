//! A throwaway PostgreSQL server for tests: `initdb` into a temporary folder, started on a
//! free port of 127.0.0.1, one database created, stopped (and the folder deleted) when the
//! [`Postgres`] value is dropped. initdb refuses to run as root, so as root the server runs
//! as the `postgres` user that Debian's package creates.
//!
//! Without PostgreSQL installed, [`Postgres::start`] returns None after printing that the
//! test is skipped — except in CI (env `CI` set), where it panics: there the tests must run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running throwaway server, stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_postgres: bool,
    /// `postgres://postgres@127.0.0.1:PORT/switchboard`.
    pub url: String,
    /// With TLS: the certificate of the CA that signed the server's (for 127.0.0.1).
    pub ca: Option<PathBuf>,
    /// The server's options (port, socket folder, no fsync), to start it again.
    options: String,
}

/// The newest installed server's binaries (Debian keeps them in /usr/lib/postgresql/N/bin),
/// or those on PATH.
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

impl Postgres {
    /// Starts a server, or None (after saying so) when PostgreSQL is not installed outside CI.
    pub fn start() -> Option<Postgres> {
        Postgres::start_with(false)
    }

    /// Starts a server that speaks TLS too, with a certificate for 127.0.0.1 signed by a CA
    /// of its own (`ca`), made with openssl.
    pub fn start_tls() -> Option<Postgres> {
        Postgres::start_with(true)
    }

    fn start_with(tls: bool) -> Option<Postgres> {
        let Some(bin) = binaries() else {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "PostgreSQL is not installed, and CI must run the PostgreSQL tests: \
                     apt-get install postgresql (.ci/run does)"
                );
            }
            eprintln!("skipped: PostgreSQL not installed");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("switchboard-pg-")
            .tempdir()
            .expect("a temporary folder");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("the data folder");
        let ca = tls.then(|| certificates(dir.path()));
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown to postgres failed");
        }
        let port = free_port();
        let mut server = Postgres {
            bin,
            dir,
            as_postgres,
            url: format!("postgres://postgres@127.0.0.1:{port}/switchboard"),
            ca,
            options: String::new(),
        };
        server.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        // Durability is PostgreSQL's business, not these tests': fsync off for speed.
        let mut options = format!(
            "-p {port} -h 127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            path(dir_of(&data))
        );
        if tls {
            let dir = path(server.dir.path());
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key"
            ));
        }
        server.options = options;
        server.resume();
        server.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "switchboard",
            ],
        );
        Some(server)
    }

    /// Stops the server (fast shutdown: sessions are ended), as an outage would.
    #[allow(dead_code)]
    pub fn pause(&self) {
        let data = self.dir.path().join("data");
        self.run("pg_ctl", &["stop", "-m", "fast", "-w", "-D", path(&data)]);
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server and its backends: STOP freezes it with
    /// its connections open, as a network partition or a hung host would.
    #[allow(dead_code)]
    pub fn signal(&self, signal: &str) {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(pid_file).expect("the server runs");
        let postmaster = text.lines().next().expect("its pid").trim().to_string();
        let children = Command::new("ps")
            .args(["-o", "pid=", "--ppid", &postmaster])
            .output()
            .expect("ps runs");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_string),
        );
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pids:?}");
    }

    /// Starts the server (again), on the same port, and waits until it answers.
    pub fn resume(&self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-o",
                &self.options,
            ],
        );
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A CA, and a server certificate for 127.0.0.1 that it signed, in `dir`; returns the
/// CA's certificate.
fn certificates(dir: &Path) -> PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let rsa = ["-newkey", "rsa:2048", "-nodes"];
    openssl(
        &[
            &["req", "-x509"],
            &rsa[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=switchboard test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"],
            &rsa[..],
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("the key's mode");
    dir.join("ca.pem")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn dir_of(p: &Path) -> &Path {
    p.parent().expect("the data folder has a parent")
}

/// Whether this process runs as root (initdb refuses to).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
