//! The ctguard web server: serves the Leptos UI, signs staff in with roles, samples the helper
//! once a second for everyone, and never touches the kernel itself.

pub mod account_admin;
pub mod audit;
pub mod audit_export;
pub mod audit_log;
pub mod auth;
pub mod client_info;
pub mod clock;
pub mod configuration;
pub mod confirmation;
pub mod creators;
pub mod db;
pub mod devices;
pub mod domain;
pub mod hashing;
pub mod helper_client;
pub mod history_store;
pub mod live_events;
pub mod logins;
pub mod metrics;
pub mod read_limits;
pub mod requester;
pub mod sampler;
pub mod security_headers;
pub mod startup;
pub mod table_operations;
pub mod telemetry;
pub mod user_cli;
pub mod users;
