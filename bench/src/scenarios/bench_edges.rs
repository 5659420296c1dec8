//! The bench's own edges: `scripts/edge.sh start` (wrangler's dev server, the build `make up`
//! made) under a name and port of the bench's, forwarding to an origin of the bench's. Each is
//! stopped when dropped.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

/// A running bench edge.
pub(crate) struct BenchEdge {
    pub name: String,
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    root: PathBuf,
}

impl BenchEdge {
    /// Starts the edge `name` on a free port from `from`, forwarding to `origin_url` with
    /// `edge_secret`; `direct`: without wrangler's proxy process (`edge/dev-server.mjs --direct`).
    pub(crate) fn start(
        root: &std::path::Path,
        name: &str,
        from: u16,
        origin_url: &str,
        edge_secret: &str,
        direct: bool,
    ) -> anyhow::Result<Self> {
        let port = crate::origin_proc::free_port(from, &[]);
        eprintln!("starting the bench edge {name} on 127.0.0.1:{port} (forwarding to {origin_url})");
        let edge = Self { name: name.to_owned(), port, url: format!("http://127.0.0.1:{port}"), root: root.to_owned() };
        let out = edge
            .script("start")
            .env("ORIGIN_URL", origin_url)
            .env("ORIGIN_URLS", "")
            .env("EDGE_SECRET", edge_secret)
            .env("EDGE_DIRECT", if direct { "1" } else { "" })
            .output()
            .context("run scripts/edge.sh start")?;
        if !out.status.success() {
            bail!("scripts/edge.sh start ({name}) failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(edge)
    }

    fn script(&self, what: &str) -> Command {
        let mut command = Command::new(self.root.join("scripts/edge.sh"));
        command
            .arg(what)
            .current_dir(&self.root)
            .env("EDGE_NAME", &self.name)
            .env("EDGE_PORT", self.port.to_string())
            .env("EDGE_URL", &self.url);
        command
    }
}

impl Drop for BenchEdge {
    fn drop(&mut self) {
        match self.script("stop").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!("seckill-bench: stopping the edge {}: {}", self.name, String::from_utf8_lossy(&out.stderr))
            }
            Err(e) => eprintln!("seckill-bench: stopping the edge {}: {e}", self.name),
        }
    }
}
