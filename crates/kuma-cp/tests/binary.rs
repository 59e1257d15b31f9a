//! The `kuma-cp` binary: configuration errors, serving, SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn bad_setting_is_named_and_exit_is_non_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_kuma-cp"))
        .arg("run")
        .env("KUMA_STORE_TYPE", "etcd")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KUMA_STORE_TYPE"), "{stderr}");
}

#[test]
fn migrate_up_refuses_non_postgres_stores() {
    let out = Command::new(env!("CARGO_BIN_EXE_kuma-cp"))
        .args(["migrate", "up"])
        .env("KUMA_STORE_TYPE", "memory")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("postgres"));
}

#[test]
fn serves_until_sigterm_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kuma-cp.conf.yml");
    let port = free_port();
    std::fs::write(
        &config,
        format!("store:\n  type: memory\napiServer:\n  http:\n    interface: 127.0.0.1\n    port: {port}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kuma-cp"))
        .args(["run", "--log-level", "info", "--config-file"])
        .arg(&config)
        .env("KUMA_GENERAL_WORK_DIR", dir.path())
        // Any free loopback ports: tests elsewhere may hold the defaults.
        .env("KUMA_API_SERVER_HTTPS_PORT", "0")
        .env("KUMA_API_SERVER_HTTPS_INTERFACE", "127.0.0.1")
        .env("KUMA_DP_SERVER_PORT", "0")
        .env("KUMA_DP_SERVER_INTERFACE", "127.0.0.1")
        .env("KUMA_DIAGNOSTICS_SERVER_PORT", "0")
        .env("KUMA_DIAGNOSTICS_INTERFACE", "127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let attempt = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            use std::io::{Read, Write};
            s.write_all(b"GET /meshes/default HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        });
        match attempt {
            Ok(body) => break body,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                let _ = child.kill();
                panic!("kuma-cp never served: {e}");
            }
        }
    };
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("kuma-cp did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
