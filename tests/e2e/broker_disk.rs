//! No broker starts on a disk it would soon refuse to write to: `scripts/services.sh` (which
//! `make up`, `make test` and `make torture` start brokers with) checks the disk first and stops
//! with a message naming the threshold, before anything changes.

use seckill_e2e::{services, services_script};

/// How full the disk holding the brokers' stores is now, as the brokers measure it: 1 -
/// available / size, in whole percent rounded up.
fn disk_used_percent() -> u32 {
    let data = seckill_e2e::services_data_dir();
    let out =
        std::process::Command::new("df").arg("-B1").arg("--output=size,avail").arg(&data).output().expect("run df");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().nth(1).expect("df prints a line for the disk");
    let [size, avail]: [f64; 2] = line
        .split_whitespace()
        .map(|n| n.parse().expect("df prints byte counts"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("size and available");
    ((size - avail) * 100.0 / size).ceil() as u32
}

#[test]
fn a_broker_is_not_started_on_a_disk_past_the_threshold() {
    let used = disk_used_percent();
    assert!(used >= 2, "the disk is {used} % full: too empty to put a threshold under it");
    // A threshold under today's use: the disk is past it, as a full disk would be past 87 %.
    let threshold = (used - 1).min(89);
    let out = std::process::Command::new("bash")
        .arg(services_script())
        .args(["start", "broker", "test"])
        .env("BROKER_DISK_MAX_USED_PERCENT", threshold.to_string())
        .output()
        .expect("run services.sh");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "services.sh started a broker on a disk past {threshold} %: {said}");
    assert!(
        said.contains(&format!(
            "is {used} % full (1 - available / size, as the broker measures it), at or past the {threshold} %"
        )) && said.contains("90 %"),
        "the refusal names the disk's use and the threshold: {said}"
    );
    // The running test broker was left alone: the sends of the other modules still go through.
    services(&["start", "broker", "test"]);
}

#[test]
fn a_threshold_at_or_past_the_brokers_own_limit_is_refused() {
    for bad in ["90", "0", "abc"] {
        let out = std::process::Command::new("bash")
            .arg(services_script())
            .args(["start", "broker", "test"])
            .env("BROKER_DISK_MAX_USED_PERCENT", bad)
            .output()
            .expect("run services.sh");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "BROKER_DISK_MAX_USED_PERCENT={bad}: {said}");
        assert!(said.contains("BROKER_DISK_MAX_USED_PERCENT must be 1 to 89"), "{said}");
    }
}
