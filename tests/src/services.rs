//! `scripts/services.sh`, for tests that stop and start the shared services.

use std::path::PathBuf;

/// `scripts/services.sh` of this repository, for tests that stop and start services.
pub fn services_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh")
}

/// Runs `scripts/services.sh ARGS`, panicking with its output if it fails.
pub fn services(args: &[&str]) {
    let out = std::process::Command::new("bash").arg(services_script()).args(args).output().expect("run services.sh");
    assert!(
        out.status.success(),
        "services.sh {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The name servers of the `pair` profile (`services.sh start mq pair`: brokers a and b, each
/// with a synchronous slave), as a client is given them: `host:port;host:port`.
pub fn pair_namesrv_addr() -> String {
    let port: u16 = std::env::var("PAIR_NAMESRV_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(9878);
    format!("127.0.0.1:{port};127.0.0.1:{}", port + 10)
}

/// Where `scripts/services.sh` keeps the services' data (`SECKILL_DATA`, else `.run/data`).
pub fn services_data_dir() -> PathBuf {
    std::env::var_os("SECKILL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.run/data"))
}

/// Waits (up to `within`) until both slaves of the `pair` profile hold `topics` in their topic
/// table. A slave copies its master's topics every ~12 s and serves pulls only for topics it
/// holds: a master killed before its slave's next copy leaves a new topic unreadable there.
/// True once both hold them all.
pub async fn wait_pair_slaves_know(topics: &[&str], within: std::time::Duration) -> bool {
    let tables = ["broker-pair-s", "broker-pair-b-s"]
        .map(|slave| services_data_dir().join(slave).join("store/config/topics.json"));
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let known = tables.iter().all(|table| {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            topics.iter().all(|topic| text.contains(&format!("\"{topic}\"")))
        });
        if known {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
