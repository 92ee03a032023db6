//! `ctguard-helper`: command line, namespace entry and start-up of the root helper.

use std::process::ExitCode;

use clap::Parser;

use ctguard_helper::{cli::Cli, netns, server};

fn main() -> ExitCode {
    let cli = Cli::parse();
    ctguard_helper::telemetry::init();
    let netns = cli.netns.clone();
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };

    // setns() affects only the calling thread, so the namespace is entered before the tokio runtime
    // starts any thread: every worker then inherits it, and /proc/net and /proc/sys/net resolve there.
    if let Some(name) = &netns
        && let Err(error) = netns::enter(name)
    {
        tracing::error!(%error, "cannot enter the network namespace to watch");
        return ExitCode::FAILURE;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "helper stopped");
            ExitCode::FAILURE
        }
    }
}
