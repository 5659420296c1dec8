//! No broker starts on a disk it would soon refuse to write to: `scripts/services.sh` (which
//! `make up`, `make test` and `make torture` start brokers with) checks the disk first and stops
//! with a message naming the threshold, before anything changes.

use seckill_e2e::{services, services_script};

/// How full the disk holding the brokers' stores is now, in whole percent.
fn disk_used_percent() -> u32 {
    let data = std::env::var("SECKILL_DATA").unwrap_or_else(|_| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.run/data").to_string_lossy().into_owned()
    });
    let out = std::process::Command::new("df").args(["-P", &data]).output().expect("run df");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("df prints a line for the disk");
    line.split_whitespace().nth(4).and_then(|p| p.trim_end_matches('%').parse().ok()).expect("a use percentage")
}

#[test]
fn a_broker_is_not_started_on_a_disk_past_the_threshold() {
    let used = disk_used_percent();
    assert!(used >= 2, "the disk is {used} % full: too empty to put a threshold under it");
    // A threshold under today's use: the disk is past it, as a full disk would be past 70 %.
    let threshold = (used - 1).min(74);
    let out = std::process::Command::new("bash")
        .arg(services_script())
        .args(["start", "broker", "test"])
        .env("BROKER_DISK_MAX_USED_PERCENT", threshold.to_string())
        .output()
        .expect("run services.sh");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "services.sh started a broker on a disk past {threshold} %: {said}");
    assert!(
        said.contains(&format!("is {used} % full, at or past the {threshold} %")) && said.contains("75 %"),
        "the refusal names the disk's use and the threshold: {said}"
    );
    // The running test broker was left alone: the sends of the other modules still go through.
    services(&["start", "broker", "test"]);
}

#[test]
fn a_threshold_at_or_past_the_brokers_own_limit_is_refused() {
    for bad in ["75", "0", "abc"] {
        let out = std::process::Command::new("bash")
            .arg(services_script())
            .args(["start", "broker", "test"])
            .env("BROKER_DISK_MAX_USED_PERCENT", bad)
            .output()
            .expect("run services.sh");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "BROKER_DISK_MAX_USED_PERCENT={bad}: {said}");
        assert!(said.contains("BROKER_DISK_MAX_USED_PERCENT must be 1 to 74"), "{said}");
    }
}
