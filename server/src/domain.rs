//! Values parsed once at the edge into types that cannot hold bad values.

mod password;
mod username;

pub use password::Password;
pub use username::Username;
