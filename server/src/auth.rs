//! Signing in and staying signed in: the login and logout handlers, the per-request session check,
//! the route permission table, the path guard, login throttling and the cross-origin guard; the
//! second factor, the new-password rules and each user's own account.

pub mod authenticate;
pub mod authorize;
pub mod login;
pub mod new_password;
pub mod next_page;
pub mod origin;
pub mod own_account;
pub mod request_path;
pub mod second_factor;
pub mod throttle;

use std::time::Duration;

/// How long sessions live.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Signed out after this long without a request.
    pub idle: Duration,
    /// Signed out this long after signing in, however active.
    pub absolute: Duration,
    /// Cookies only over HTTPS, under the `__Host-` prefix.
    pub secure_cookies: bool,
    /// Admins must have a second factor: one without is sent to enrol one after the password,
    /// and can do nothing else until it is confirmed.
    pub second_factor_for_admins: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(8 * 60 * 60),
            secure_cookies: false,
            second_factor_for_admins: false,
        }
    }
}

impl SessionPolicy {
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-ctguard_session"
        } else {
            "ctguard_session"
        }
    }
}
