//! Real PostgreSQL for tests (cargo feature `testing`).
//!
//! [`TestPostgres::new`] hands each test its own fresh database. The server is
//! the one named by `KUMA_TEST_POSTGRES_URL` if set; otherwise one throwaway
//! server is started per test process (initdb + postgres on 127.0.0.1, a free
//! port, fsync off) and a small shell watchdog stops it and removes its files
//! once the test process is gone, however it ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::postgres::PostgresConfig;

/// Why a test database could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum TestPostgresError {
    #[error(
        "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: run `apt-get install -y postgresql` (or set KUMA_TEST_POSTGRES_URL)"
    )]
    MissingBinaries,
    #[error("KUMA_TEST_POSTGRES_URL is not a usable postgres:// URL: {0}")]
    BadUrl(String),
    #[error("starting the test PostgreSQL server failed: {0}")]
    Start(String),
    #[error("creating the test database failed")]
    CreateDatabase(#[source] sqlx::Error),
}

/// One fresh database on the test server.
#[derive(Debug, Clone)]
pub struct TestPostgres {
    config: PostgresConfig,
}

impl TestPostgres {
    /// Creates a new, empty (un-migrated) database for the calling test.
    pub async fn new() -> Result<Self, TestPostgresError> {
        static SERVER: OnceLock<Result<PostgresConfig, String>> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let admin = match SERVER.get_or_init(server) {
            Ok(admin) => admin.clone(),
            Err(e) if e == MISSING => return Err(TestPostgresError::MissingBinaries),
            Err(e) => return Err(TestPostgresError::Start(e.clone())),
        };
        let db_name = format!(
            "kuma_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // The server may still be finishing its start; retry briefly.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match create_database(&admin, &db_name).await {
                Ok(()) => break,
                Err(e) if Instant::now() > deadline => {
                    return Err(TestPostgresError::CreateDatabase(e));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(Self {
            config: PostgresConfig {
                db_name,
                max_open_connections: 10,
                min_reconnect_interval: Duration::from_millis(100),
                max_reconnect_interval: Duration::from_secs(1),
                ..admin
            },
        })
    }

    /// Settings for a store on this test's database.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// The same database as a `postgres://` URL (for processes under test).
    pub fn url(&self) -> String {
        let c = &self.config;
        format!(
            "postgres://{}:{}@{}:{}/{}",
            c.user, c.password, c.host, c.port, c.db_name
        )
    }
}

async fn create_database(admin: &PostgresConfig, db_name: &str) -> Result<(), sqlx::Error> {
    let mut conn = admin.connect_options("kuma-test").connect().await?;
    sqlx::query(&format!("CREATE DATABASE \"{db_name}\""))
        .execute(&mut conn)
        .await?;
    conn.close().await
}

const MISSING: &str = "missing binaries";

/// Admin settings (database `postgres`) of the server tests use.
fn server() -> Result<PostgresConfig, String> {
    match std::env::var("KUMA_TEST_POSTGRES_URL") {
        Ok(url) => from_url(&url).map_err(|e| e.to_string()),
        Err(_) => start_throwaway_server(),
    }
}

fn from_url(raw: &str) -> Result<PostgresConfig, TestPostgresError> {
    let bad = |why: &str| TestPostgresError::BadUrl(why.to_string());
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(bad("scheme must be postgres://"));
    }
    // Validate with sqlx too, so what we accept it can connect to.
    let _: PgConnectOptions = raw.parse().map_err(|e: sqlx::Error| bad(&e.to_string()))?;
    let db = url.path().trim_start_matches('/');
    Ok(PostgresConfig {
        host: url.host_str().unwrap_or("127.0.0.1").to_string(),
        port: url.port().unwrap_or(5432),
        user: match url.username() {
            "" => "postgres".to_string(),
            u => u.to_string(),
        },
        password: url.password().unwrap_or_default().to_string(),
        db_name: if db.is_empty() { "postgres" } else { db }.to_string(),
        ..PostgresConfig::default()
    })
}

fn find_bin_dir() -> Option<PathBuf> {
    let preferred = Path::new("/usr/lib/postgresql/15/bin");
    if preferred.join("initdb").exists() {
        return Some(preferred.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort();
    found.pop()
}

/// initdb refuses to run as root; so do we, by switching to `nobody`.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A command run as the unprivileged user when we are root.
fn as_server_user(program: &str, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> Result<u16, String> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn start_throwaway_server() -> Result<PostgresConfig, String> {
    let bin = find_bin_dir().ok_or_else(|| MISSING.to_string())?;
    let root = running_as_root();
    // Short path: the Unix socket path must stay under ~100 bytes.
    let dir = PathBuf::from(format!(
        "/tmp/kpg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() % 100_000)
    ));
    let data = dir.join("d");
    let sock = dir.join("s");
    std::fs::create_dir_all(&sock).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if root {
        run(Command::new("chown").args(["-R", "nobody"]).arg(&dir))?;
    }
    run(as_server_user(&bin.join("initdb").to_string_lossy(), root)
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;
    let port = free_port()?;
    // The watchdog runs postgres in the background and stops it (and removes
    // its files) as soon as this test process no longer exists.
    let script = format!(
        "{postgres} -D {data} -p {port} -k {sock} -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
         -c max_connections=500 >{dir}/log 2>&1 &\n\
         pg=$!\n\
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done\n\
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf {dir}\n",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        sock = sock.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    as_server_user("sh", root)
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("postgres did not become ready; log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(PostgresConfig {
        host: "127.0.0.1".into(),
        port,
        user: "postgres".into(),
        password: String::new(),
        db_name: "postgres".into(),
        ..PostgresConfig::default()
    })
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
