//! `ctguard-server`: parses the command line and runs the web server.

use clap::Parser;

use ctguard_server::{configuration::Cli, startup::Application, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Cli::parse().into_settings()?;
    telemetry::init();
    let application = Application::build(settings).await?;
    tracing::info!(url = %format!("http://{}", application.local_addr()), "ctguard-server listening");
    application.run_until_stopped().await
}
