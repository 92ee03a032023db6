//! The server's settings, from the command line and the environment, parsed once into types.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use leptos::config::{Env, LeptosOptions};

/// The ctguard web panel. Runs unprivileged; asks ctguard-helper for everything kernel-side.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
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
}

impl Cli {
    pub fn into_settings(self) -> Settings {
        Settings {
            listen: self.listen,
            site_root: self.site_root,
            helper: HelperSettings {
                socket: self.helper_socket,
                timeout: Duration::from_secs(2),
            },
            sample_interval: Duration::from_millis(self.sample_interval_ms),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub site_root: PathBuf,
    pub helper: HelperSettings,
    pub sample_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct HelperSettings {
    pub socket: PathBuf,
    /// The longest one exchange with the helper may take before it counts as not responding.
    pub timeout: Duration,
}

impl Settings {
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
