//! `ctguard-server`: parses the command line and serves the panel or manages accounts.

use clap::Parser;

use ctguard_server::{
    configuration::{Cli, Command},
    startup::Application,
    telemetry, user_cli,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    let serve = match cli.command {
        Some(Command::User { database, command }) => {
            return user_cli::run(&database.database, command).await;
        }
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let application = Application::build(serve.into_settings()?).await?;
    tracing::info!(url = %format!("http://{}", application.local_addr()), "ctguard-server listening");
    application.run_until_stopped().await
}
