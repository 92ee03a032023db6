//! The server's settings, from the command line and the environment, parsed once into types.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use leptos::config::{Env, LeptosOptions};

use crate::auth::SessionPolicy;

/// The ctguard web panel. Runs unprivileged; asks ctguard-helper for everything kernel-side.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the panel (the default).
    Serve(ServeArgs),
    /// Manage accounts (works on the database directly; run it as the user the server runs as).
    User {
        #[command(flatten)]
        database: DatabaseArg,
        #[command(subcommand)]
        command: crate::user_cli::UserCommand,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArg {
    /// The SQLite database (users, sessions, audit). Created on first use.
    #[arg(
        long,
        env = "CTGUARD_DATABASE",
        default_value = "/var/lib/ctguard/ctguard.db"
    )]
    pub database: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. `LEPTOS_SITE_ADDR` is what cargo-leptos sets.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The built site (wasm, JavaScript, CSS), as cargo-leptos lays it out.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// The helper's socket.
    #[arg(
        long,
        env = "CTGUARD_HELPER_SOCKET",
        default_value = "/run/ctguard/helper.sock"
    )]
    pub helper_socket: PathBuf,

    /// How often the sampler reads the helper, in milliseconds.
    #[arg(long, env = "CTGUARD_SAMPLE_INTERVAL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub sample_interval_ms: u64,

    #[command(flatten)]
    pub database: DatabaseArg,

    /// Origins (scheme://host:port) the panel is served at; state-changing requests from any other
    /// origin are refused. Default: http://127.0.0.1:PORT and http://localhost:PORT.
    #[arg(
        long = "public-origin",
        env = "CTGUARD_PUBLIC_ORIGIN",
        value_delimiter = ','
    )]
    pub public_origins: Vec<String>,

    /// Minutes without a request after which a session ends.
    #[arg(long, env = "CTGUARD_IDLE_MINUTES", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub idle_minutes: u64,

    /// Hours after sign-in at which a session ends, however active.
    #[arg(long, env = "CTGUARD_SESSION_HOURS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=168))]
    pub session_hours: u64,

    /// Mark cookies Secure and name them with the __Host- prefix: set when users reach the panel
    /// over HTTPS (through a TLS-terminating reverse proxy).
    #[arg(long, env = "CTGUARD_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// The reverse proxy's address: only its X-Forwarded-For is believed.
    #[arg(long, env = "CTGUARD_TRUSTED_PROXY")]
    pub trusted_proxy: Option<IpAddr>,
}

impl ServeArgs {
    pub fn into_settings(self) -> Settings {
        Settings {
            listen: self.listen,
            site_root: self.site_root,
            helper: HelperSettings {
                socket: self.helper_socket,
                timeout: Duration::from_secs(2),
            },
            sample_interval: Duration::from_millis(self.sample_interval_ms),
            database: self.database.database,
            public_origins: self.public_origins,
            session: SessionPolicy {
                idle: Duration::from_secs(self.idle_minutes * 60),
                absolute: Duration::from_secs(self.session_hours * 3600),
                secure_cookies: self.secure_cookies,
            },
            trusted_proxy: self.trusted_proxy,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub site_root: PathBuf,
    pub helper: HelperSettings,
    pub sample_interval: Duration,
    pub database: PathBuf,
    /// Empty means: the bound port on 127.0.0.1 and localhost.
    pub public_origins: Vec<String>,
    pub session: SessionPolicy,
    pub trusted_proxy: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct HelperSettings {
    pub socket: PathBuf,
    /// The longest one exchange with the helper may take before it counts as not responding.
    pub timeout: Duration,
}

impl Settings {
    /// The origins state-changing requests must come from, given the address actually bound.
    pub fn public_origins(&self, bound: SocketAddr) -> Vec<String> {
        if self.public_origins.is_empty() {
            let port = bound.port();
            vec![
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
            ]
        } else {
            self.public_origins.clone()
        }
    }

    /// The options Leptos renders with. Built here rather than read from Cargo.toml, so the binary
    /// runs the same under cargo-leptos, from a package, and in tests.
    pub fn leptos_options(&self, bound: SocketAddr) -> LeptosOptions {
        let env = match std::env::var("LEPTOS_ENV").as_deref() {
            Ok("DEV") | Ok("dev") => Env::DEV,
            _ => Env::PROD,
        };
        LeptosOptions::builder()
            .output_name("ctguard")
            .site_root(self.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(bound)
            .env(env)
            .build()
    }
}
