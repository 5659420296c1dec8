//! `seckill-origin <command>`: serve | consume | run | migrate.

use std::process::ExitCode;

use seckill_origin::configuration;
use seckill_origin::startup::{self, Server, Workers};

const USAGE: &str = "usage: seckill-origin <command>

commands:
  serve     HTTP API: buy path, order status, admin
  consume   order writer (RocketMQ consumer -> MySQL)
  run       serve and consume in one process
  migrate   create the database if missing and apply migrations/

Settings come from config/base.toml and APP_<SECTION>__<KEY> environment variables.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.as_slice() {
        [c] if ["serve", "consume", "run", "migrate"].contains(&c.as_str()) => c.clone(),
        [h] if h == "-h" || h == "--help" || h == "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [] => {
            eprintln!("seckill-origin: missing command\n\n{USAGE}");
            return ExitCode::from(2);
        }
        other => {
            eprintln!("seckill-origin: unknown command {:?}\n\n{USAGE}", other.join(" "));
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            "info,rocketmq_client_rust=warn,rocketmq_remoting=warn,rocketmq_transport=warn,sqlx=warn".into()
        }))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(&command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seckill-origin {command}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: &str) -> anyhow::Result<()> {
    let settings = configuration::load()?;
    match command {
        "migrate" => {
            startup::migrate(&settings).await?;
            println!("migrations applied to {}", settings.mysql.database);
            Ok(())
        }
        "serve" => {
            let mut server = Server::start(settings).await?;
            tokio::select! {
                r = server.wait() => return r,
                _ = tokio::signal::ctrl_c() => {},
                _ = terminate() => {},
            }
            server.shutdown().await
        }
        "consume" => {
            let mut workers = Workers::start(settings).await?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = terminate() => {},
            }
            workers.shutdown().await;
            Ok(())
        }
        "run" => {
            let mut workers = Workers::start(settings.clone()).await?;
            let mut server = Server::start(settings).await?;
            let result = tokio::select! {
                r = server.wait() => Err(r.err().unwrap_or_else(|| anyhow::anyhow!("the HTTP server stopped"))),
                _ = tokio::signal::ctrl_c() => Ok(()),
                _ = terminate() => Ok(()),
            };
            if result.is_ok() {
                server.shutdown().await?;
            }
            workers.shutdown().await;
            result
        }
        _ => unreachable!("command checked in main"),
    }
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
