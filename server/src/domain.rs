//! Values parsed once at the edge into types that cannot hold bad values.

pub mod metrics_token;
mod password;
mod username;

pub use metrics_token::MetricsToken;
pub use password::Password;
pub use username::Username;
