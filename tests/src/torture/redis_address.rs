//! The address the run's origins know Redis by: a TCP relay whose target can be moved from one
//! server to another, as a virtual IP or a Sentinel-aware proxy moves at a failover. Moving it
//! closes every relayed connection, so each client reconnects, and reaches the new server.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

#[derive(Debug)]
pub struct RedisAddress {
    /// `redis://127.0.0.1:<port>`: what the origins are given as `redis.url`.
    pub url: String,
    target: Arc<RwLock<String>>,
    /// Bumped at every move: connections relayed to the old target end.
    moves: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl RedisAddress {
    /// Listens on a free port of 127.0.0.1 and relays to `target` (`redis://host:port`).
    pub async fn start(target: &str) -> anyhow::Result<RedisAddress> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("redis://{}", listener.local_addr()?);
        let target = Arc::new(RwLock::new(host_port(target)));
        let moves = watch::channel(0).0;
        let task = tokio::spawn({
            let (target, moves) = (Arc::clone(&target), moves.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let to = target.read().expect("target lock").clone();
                    let mut moved = moves.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(&to).await else { return };
                        tokio::select! {
                            _ = moved.changed() => {}
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        }
                    });
                }
            }
        });
        Ok(RedisAddress { url, target, moves, task })
    }

    /// Points the address at `target` and closes every connection to the old one.
    pub fn move_to(&self, target: &str) {
        *self.target.write().expect("target lock") = host_port(target);
        self.moves.send_modify(|n| *n += 1);
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("redis://").trim_end_matches('/').to_string()
}

impl Drop for RedisAddress {
    fn drop(&mut self) {
        self.task.abort();
        self.moves.send_modify(|n| *n += 1);
    }
}
