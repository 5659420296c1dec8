//! A TCP proxy in front of Redis that loses a reply, or goes down, on demand: for tests of
//! commands whose outcome the origin cannot know.

use std::time::Duration;

/// A TCP proxy in front of Redis that can lose one reply: armed with a marker, it forwards the
/// first request whose bytes contain the marker, lets Redis run it, then drops that connection
/// without relaying the answer — a command whose outcome the client cannot know. It can also
/// go down (connections refused) and come back on the same port.
#[derive(Debug)]
pub struct LossyRedisProxy {
    /// `redis://127.0.0.1:<port>`: point the origin's `redis.url` here.
    pub url: String,
    addr: std::net::SocketAddr,
    upstream: String,
    armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// Set by [`LossyRedisProxy::lose_the_answer_and_go_dark`]: after the cut, `dark` is set.
    dark_after_cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// While set, every request (on a new connection or an open one) closes its connection
    /// unanswered.
    dark: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Requests that were cut so far.
    pub cut: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Flipped to true by [`LossyRedisProxy::stop`]: every open connection is closed.
    down: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl LossyRedisProxy {
    pub async fn start(upstream: &str) -> LossyRedisProxy {
        let upstream = upstream.trim_start_matches("redis://").trim_end_matches('/').to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = LossyRedisProxy {
            url: format!("redis://{addr}"),
            addr,
            upstream,
            armed: Default::default(),
            dark_after_cut: Default::default(),
            dark: Default::default(),
            cut: Default::default(),
            down: tokio::sync::watch::channel(false).0,
            task: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (upstream, armed, cut, down) =
            (self.upstream.clone(), self.armed.clone(), self.cut.clone(), self.down.clone());
        let (dark_after_cut, dark) = (self.dark_after_cut.clone(), self.dark.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if dark.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client's connection closes unanswered
                }
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
                let (armed, cut, mut down) = (armed.clone(), cut.clone(), down.subscribe());
                let (dark_after_cut, dark) = (dark_after_cut.clone(), dark.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        biased; // once down, nothing more is relayed
                        _ = down.wait_for(|d| *d) => {}
                        _ = Self::pipe(client, server, armed, cut, dark_after_cut, dark) => {}
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// The next request containing `marker` runs in Redis but its answer is lost.
    pub fn lose_the_answer_to(&self, marker: &str) {
        *self.armed.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    /// Like [`LossyRedisProxy::lose_the_answer_to`], and from the cut on every request, on any
    /// connection, closes it unanswered (Redis unreachable, but no connection refused) until
    /// [`LossyRedisProxy::light_up`].
    pub fn lose_the_answer_and_go_dark(&self, marker: &str) {
        self.dark_after_cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.lose_the_answer_to(marker);
    }

    /// New connections are relayed again.
    pub fn light_up(&self) {
        self.dark.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Closes every connection and stops listening: connections are refused until
    /// [`LossyRedisProxy::restart`].
    pub fn stop(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        self.down.send_replace(true);
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.down.send_replace(false);
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("rebind the proxy's port");
        self.serve(listener);
    }

    async fn pipe(
        client: tokio::net::TcpStream,
        server: tokio::net::TcpStream,
        armed: std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>,
        cut: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        dark_after_cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
        dark: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let replies = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let _stop_replies = AbortOnDrop(replies);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if dark.load(std::sync::atomic::Ordering::SeqCst) {
                return; // Redis is out of reach: the request goes unanswered
            }
            let chunk = &buf[..n];
            let hit = {
                let mut armed = armed.lock().unwrap();
                let hit = armed.as_ref().is_some_and(|m| chunk.windows(m.len()).any(|w| w == m.as_slice()));
                if hit {
                    *armed = None;
                }
                hit
            };
            if hit {
                if dark_after_cut.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    dark.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                // The reply must not get through: stop relaying before Redis can answer.
                _stop_replies.0.abort();
                let _ = server_write.write_all(chunk).await;
                cut.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Long enough for Redis to run it; then the connection dies unanswered.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return; // dropping both halves closes both connections
            }
            if server_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for LossyRedisProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
