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
