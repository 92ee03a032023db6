//! The ctguard web server: serves the Leptos UI, samples the helper once a second for everyone,
//! and never touches the kernel itself.

pub mod configuration;
pub mod helper_client;
pub mod history_store;
pub mod live_events;
pub mod metrics;
pub mod sampler;
pub mod startup;
pub mod telemetry;
