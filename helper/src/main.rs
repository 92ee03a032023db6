//! `ctguard-helper`: command line, namespace entry and start-up of the root helper, and the
//! `journal verify` subcommand.

use std::{fs::File, io::BufReader, path::Path, process::ExitCode};

use clap::Parser;

use ctguard_helper::{
    cli::{Cli, Command, JournalCommand},
    journal, listener, netns,
    state_dir::StateDir,
};

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    ctguard_helper::telemetry::init();
    if let Some(Command::Journal {
        action: JournalCommand::Verify { path },
    }) = cli.command.take()
    {
        return verify_journal(&path);
    }
    let netns = cli.netns.clone();
    let config = match cli.into_config() {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };

    // The initial namespace, kept open before leaving it: global sysctls (nf_conntrack_max) are
    // writable only from there, by a short-lived thread that enters it. Without --netns the
    // helper never leaves it, and needs no setns (nor CAP_SYS_ADMIN) for them.
    let initial_netns = match netns.as_ref().map(|_| File::open("/proc/self/ns/net")) {
        None => None,
        Some(Ok(file)) => Some(file),
        Some(Err(error)) => {
            tracing::error!(%error, "cannot open /proc/self/ns/net");
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
    match runtime.block_on(listener::run(config, initial_netns)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "helper stopped");
            ExitCode::FAILURE
        }
    }
}

/// Prints the verdict on stdout; exit status 0 only for an intact chain. `path` is the helper's
/// state directory (every segment, in order) or one journal file (checked from the chain's
/// start: the first segment, or a journal that never rotated).
fn verify_journal(path: &Path) -> ExitCode {
    if path.is_dir() {
        let dir = match StateDir::open(path) {
            Ok(dir) => dir,
            Err(error) => {
                println!("{}: cannot open: {error}", path.display());
                return ExitCode::from(2);
            }
        };
        return match journal::verify_dir(&dir) {
            Ok((end, segments)) => {
                println!(
                    "{}: ok, {} records in {segments} segment(s), last hash {}",
                    path.display(),
                    end.records,
                    end.last_hash
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                println!("{}: BROKEN: {error}", path.display());
                ExitCode::FAILURE
            }
        };
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) => {
            println!("{}: cannot open: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    match journal::verify(BufReader::new(file)) {
        Ok(end) => {
            println!(
                "{}: ok, {} records, last hash {}",
                path.display(),
                end.records,
                end.last_hash
            );
            ExitCode::SUCCESS
        }
        Err(broken) => {
            println!("{}: BROKEN: {broken}", path.display());
            ExitCode::FAILURE
        }
    }
}
