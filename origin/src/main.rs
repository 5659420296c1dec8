//! `seckill-origin <command>`: serve | consume | run | migrate | reconcile.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use seckill_origin::broker::Messaging;
use seckill_origin::configuration::{self, LogFormat};
use seckill_origin::fencing::reconcile::{Reconciler, MAX_QUEUE_WAIT};
use seckill_origin::startup::{self, Server, Workers};
use seckill_origin::stock::StockStore;

/// The seckill origin. Settings come from config/base.toml and APP_<SECTION>__<KEY>
/// environment variables.
#[derive(Parser)]
#[command(name = "seckill-origin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HTTP API: buy path, order status, admin
    Serve,
    /// Order writer, canceller, dead-letter keeper, event relay (RocketMQ consumers -> MySQL)
    Consume,
    /// serve and consume in one process
    Run,
    /// Create the database if missing and apply migrations/
    Migrate,
    /// The RocketMQ brokers the name servers know: role, address, whether each master's
    /// slaves are in sync (make status prints this)
    Brokers {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Repair a product's Redis state from MySQL plus what Redis knows is in flight (after
    /// Redis lost data); prints the changes as JSON. Waits for the order queue to drain first.
    Reconcile {
        /// The product id
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        product_id: u64,
        /// Only say what would change; change and log nothing
        #[arg(long)]
        dry_run: bool,
        /// How long to wait for the order queue to drain, in seconds (at most 300)
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=MAX_QUEUE_WAIT.as_secs()))]
        wait_secs: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match configuration::load() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("seckill-origin: settings: {e}");
            return ExitCode::FAILURE;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,rocketmq_client_rust=warn,rocketmq_remoting=warn,rocketmq_transport=warn,sqlx=warn".into()
    });
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match settings.log.format {
        LogFormat::Text => logs.init(),
        // Spans flattened into each line: a request's lines all carry its request_id.
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seckill-origin: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: configuration::Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            startup::migrate(&settings).await?;
            println!("migrations applied to {}", settings.mysql.database);
            Ok(())
        }
        Command::Serve => {
            let mut server = Server::start(settings).await?;
            tokio::select! {
                r = server.wait() => return r,
                _ = tokio::signal::ctrl_c() => {},
                _ = terminate() => {},
            }
            server.shutdown().await
        }
        Command::Consume => {
            let mut workers = Workers::start(settings).await?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = terminate() => {},
            }
            workers.shutdown().await;
            Ok(())
        }
        Command::Run => {
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
        Command::Brokers { json } => {
            let messaging = Messaging::start(&settings.rocketmq)?;
            let brokers = seckill_origin::broker::cluster::describe(&messaging).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&brokers)?);
            } else {
                print!("{}", seckill_origin::broker::cluster::table(&brokers));
            }
            Ok(())
        }
        Command::Reconcile { product_id, dry_run, wait_secs } => {
            let db = startup::connect_mysql(&settings).await?;
            let stock = StockStore::connect(&settings.redis).await?;
            let messaging = Messaging::start(&settings.rocketmq)?;
            let reconciler = Reconciler { db: &db, stock: &stock, messaging: &messaging, rocketmq: &settings.rocketmq };
            match reconciler.run(product_id, dry_run, Duration::from_secs(wait_secs)).await {
                Ok(report) => {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                    Ok(())
                }
                Err(e) => anyhow::bail!("reconcile refused ({}): {e}", e.code()),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_reconcile_arguments_name_the_problem() {
        for (args, expected) in [
            (vec!["reconcile"], "<PRODUCT_ID>"),
            (vec!["reconcile", "0"], "PRODUCT_ID"),
            (vec!["reconcile", "x"], "PRODUCT_ID"),
            (vec!["reconcile", "3", "--wait-secs", "301"], "--wait-secs"),
            (vec!["reconcile", "3", "--dry"], "--dry"),
        ] {
            let err = Cli::try_parse_from(std::iter::once("seckill-origin").chain(args.clone()))
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert!(err.to_string().contains(expected), "{args:?}: {err}");
        }
        assert!(Cli::try_parse_from(["seckill-origin", "reconcile", "3", "--dry-run"]).is_ok());
    }
}
