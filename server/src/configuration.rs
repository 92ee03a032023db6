//! The server's settings, from the command line and the environment, parsed once into types.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, Parser, Subcommand};
use ctguard_app::dashboard::thresholds::Thresholds;
use ctguard_protocol::creators::MAX_CREATORS_PER_LIST;
use leptos::config::{Env, LeptosOptions};

use crate::{
    auth::SessionPolicy,
    domain::{MetricsToken, metrics_token::InvalidMetricsToken},
};

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

    /// Admins must sign in with a second factor (TOTP): one who has none is sent to enrol one
    /// after the password and can do nothing else until it is confirmed.
    #[arg(long, env = "CTGUARD_REQUIRE_SECOND_FACTOR_FOR_ADMINS")]
    pub require_second_factor_for_admins: bool,

    /// The reverse proxy's address: only its X-Forwarded-For is believed.
    #[arg(long, env = "CTGUARD_TRUSTED_PROXY")]
    pub trusted_proxy: Option<IpAddr>,

    /// Where the server keeps what survives a restart (the day's history of the table).
    #[arg(long, env = "CTGUARD_STATE_DIR", default_value = "/var/lib/ctguard")]
    pub state_dir: PathBuf,

    /// Fill (percent of the limit) at which the dashboard warns.
    #[arg(long, env = "CTGUARD_WARNING_PERCENT", default_value_t = 80.0, value_parser = percent)]
    pub warning_percent: f64,

    /// Fill (percent of the limit) at which the dashboard raises the critical alarm.
    #[arg(long, env = "CTGUARD_CRITICAL_PERCENT", default_value_t = 95.0, value_parser = percent)]
    pub critical_percent: f64,

    /// How long a change's preview may be confirmed, in seconds.
    #[arg(long, env = "CTGUARD_CONFIRMATION_SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(2..=900))]
    pub confirmation_secs: u64,

    /// Days the audit log keeps a record; older ones are archived to a CSV file in the state
    /// directory (`audit-archive/`), then deleted, by an hourly sweep. 0 keeps them for ever.
    #[arg(long, env = "CTGUARD_AUDIT_RETENTION_DAYS", default_value_t = crate::audit::retention::DEFAULT_DAYS, value_parser = clap::value_parser!(u32).range(0..=36_500))]
    pub audit_retention_days: u32,

    /// A file holding the bearer token `/metrics` then requires (Prometheus' `authorization:
    /// credentials_file`). Without it, `/metrics` answers anyone who reaches the port.
    #[arg(long, env = "CTGUARD_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,

    /// The top creators of new entries per key (source, destination and the two with a service)
    /// `/metrics` exports over the last minute, each a series labelled with its address: at most
    /// 4 × this many. 0 exports none (the totals stay).
    #[arg(long, env = "CTGUARD_METRICS_TOP_CREATORS", default_value_t = DEFAULT_METRICS_TOP_CREATORS, value_parser = clap::value_parser!(u16).range(0..=MAX_CREATORS_PER_LIST as i64))]
    pub metrics_top_creators: u16,
}

/// `--metrics-top-creators` when not given.
pub const DEFAULT_METRICS_TOP_CREATORS: u16 = 10;

fn percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value > 0.0 && value <= 100.0 {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not a percentage above 0 and at most 100"
        ))
    }
}

/// Settings that parse but do not make sense together.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(
        "the warning threshold ({warning} %) must not be above the critical one ({critical} %)"
    )]
    ThresholdsInverted { warning: f64, critical: f64 },
    #[error("cannot read the metrics token file {path}: {source}")]
    MetricsTokenUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the metrics token file {path}: {source}")]
    MetricsTokenInvalid {
        path: PathBuf,
        source: InvalidMetricsToken,
    },
}

impl ServeArgs {
    pub fn into_settings(self) -> Result<Settings, SettingsError> {
        if self.warning_percent > self.critical_percent {
            return Err(SettingsError::ThresholdsInverted {
                warning: self.warning_percent,
                critical: self.critical_percent,
            });
        }
        let metrics_token = match self.metrics_token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| {
                    SettingsError::MetricsTokenUnreadable {
                        path: path.clone(),
                        source,
                    }
                })?;
                Some(
                    MetricsToken::parse(&text)
                        .map_err(|source| SettingsError::MetricsTokenInvalid { path, source })?,
                )
            }
        };
        Ok(Settings {
            listen: self.listen,
            site_root: self.site_root,
            helper: HelperSettings {
                socket: self.helper_socket,
                timeout: Duration::from_secs(2),
                slow_timeout: Duration::from_secs(20),
            },
            sample_interval: Duration::from_millis(self.sample_interval_ms),
            database: self.database.database,
            public_origins: self.public_origins,
            session: SessionPolicy {
                idle: Duration::from_secs(self.idle_minutes * 60),
                absolute: Duration::from_secs(self.session_hours * 3600),
                secure_cookies: self.secure_cookies,
                second_factor_for_admins: self.require_second_factor_for_admins,
            },
            trusted_proxy: self.trusted_proxy,
            state_dir: self.state_dir,
            history_save_interval: Duration::from_secs(60),
            thresholds: Thresholds {
                warning_percent: self.warning_percent,
                critical_percent: self.critical_percent,
            },
            confirmation_lifetime: Duration::from_secs(self.confirmation_secs),
            metrics_token,
            metrics_top_creators: self.metrics_top_creators,
            audit_retention_days: self.audit_retention_days,
        })
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
    pub state_dir: PathBuf,
    /// How often the day's history is written to the state directory.
    pub history_save_interval: Duration,
    pub thresholds: Thresholds,
    /// How long a preview's token may be redeemed.
    pub confirmation_lifetime: Duration,
    /// The bearer token `/metrics` requires; `None`: it is public.
    pub metrics_token: Option<MetricsToken>,
    /// The top creators per key `/metrics` exports (0..=50).
    pub metrics_top_creators: u16,
    /// Days an audit record is kept before it is archived and deleted; 0: for ever.
    pub audit_retention_days: u32,
}

#[derive(Debug, Clone)]
pub struct HelperSettings {
    pub socket: PathBuf,
    /// The longest one exchange with the helper may take before it counts as not responding.
    pub timeout: Duration,
    /// The same for what takes longer than a status read: a table walk, an nft transaction, a
    /// journal check. A change left unanswered this long is audited as of unknown outcome.
    pub slow_timeout: Duration,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("ctguard-server").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        cli.serve.into_settings().map_err(|e| e.to_string())
    }

    #[test]
    fn thresholds_default_to_80_and_95_percent() {
        let settings = parse(&[]).expect("defaults parse");
        assert_eq!(settings.thresholds, Thresholds::default());
    }

    #[test]
    fn thresholds_must_be_percentages_in_order() {
        let low = parse(&["--warning-percent", "0.05"]).expect("a low warning is allowed");
        assert_eq!(low.thresholds.warning_percent, 0.05);
        assert!(parse(&["--warning-percent", "0"]).is_err());
        assert!(parse(&["--critical-percent", "101"]).is_err());
        let inverted =
            parse(&["--warning-percent", "90", "--critical-percent", "85"]).expect_err("inverted");
        assert!(inverted.contains("must not be above"), "{inverted}");
    }

    #[test]
    fn the_metrics_top_creators_default_to_10_and_stay_within_a_list() {
        assert_eq!(parse(&[]).expect("defaults").metrics_top_creators, 10);
        let none = parse(&["--metrics-top-creators", "0"]).expect("0 exports none");
        assert_eq!(none.metrics_top_creators, 0);
        let most = parse(&["--metrics-top-creators", "50"]).expect("a whole list");
        assert_eq!(most.metrics_top_creators, 50);
        assert!(parse(&["--metrics-top-creators", "51"]).is_err());
    }

    #[test]
    fn a_metrics_token_is_read_from_its_file_and_checked_once() {
        assert!(parse(&[]).expect("defaults").metrics_token.is_none());
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("metrics.token");
        let path = file.to_str().expect("utf-8");

        let missing = parse(&["--metrics-token-file", path]).expect_err("no file");
        assert!(
            missing.contains("cannot read the metrics token file"),
            "{missing}"
        );

        std::fs::write(&file, "short\n").expect("writes");
        let invalid = parse(&["--metrics-token-file", path]).expect_err("too short");
        assert!(invalid.contains("16 to 256"), "{invalid}");

        std::fs::write(&file, "a-scrape-token-long-enough\n").expect("writes");
        let settings = parse(&["--metrics-token-file", path]).expect("valid");
        let token = settings.metrics_token.expect("set");
        assert!(token.authorizes(b"Bearer a-scrape-token-long-enough"));
    }
}
