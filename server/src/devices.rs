//! Device cookies (OWASP's defence against lockout by an attacker): a browser that has signed in
//! to an account carries a long-lived random token for it. While an attacker keeps the account
//! locked for everyone else, that browser is throttled on its own, so it keeps its way in.

use axum::http::{HeaderMap, HeaderValue, header, header::InvalidHeaderValue};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use tower_sessions::cookie::{Cookie, SameSite, time::Duration};

use crate::logins::random_id;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot record the device: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the device cookie is not a header value: {0}")]
    Header(#[from] InvalidHeaderValue),
}

/// How long a browser stays known after the sign-in that made it known.
const DEVICE_LIFETIME_DAYS: i64 = 90;
const LIFETIME_SECS: i64 = DEVICE_LIFETIME_DAYS * 24 * 60 * 60;

#[derive(Debug, Clone)]
pub struct DeviceStore {
    pool: SqlitePool,
    /// Cookies only over HTTPS, under the `__Host-` prefix (as the session cookie).
    secure_cookies: bool,
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl DeviceStore {
    pub fn new(pool: SqlitePool, secure_cookies: bool) -> Self {
        Self {
            pool,
            secure_cookies,
        }
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-ctguard_device"
        } else {
            "ctguard_device"
        }
    }

    /// The device token a request carries, if any (not yet checked against anything).
    pub fn presented(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|cookie| cookie.name() == self.cookie_name())
            .map(|cookie| cookie.value().to_owned())
    }

    /// Whether `token` was issued, less than its lifetime before `now`, to a browser that signed
    /// in as `username`. (The browser forgets the cookie then; a copy of it is worth nothing
    /// either.)
    pub async fn recognises(
        &self,
        token: &str,
        username: &str,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM devices d JOIN users u ON u.id = d.user_id
             WHERE d.token_hash = ? AND u.username = ? AND d.created_at > ?",
        )
        .bind(token_hash(token))
        .bind(username)
        .bind(now - LIFETIME_SECS)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Records a new device of `user_id`; returns the `Set-Cookie` value that gives it to the
    /// browser.
    pub async fn issue(&self, user_id: i64, now: i64) -> Result<HeaderValue, DeviceError> {
        // Devices past their lifetime are swept as new ones arrive.
        sqlx::query("DELETE FROM devices WHERE created_at <= ?")
            .bind(now - LIFETIME_SECS)
            .execute(&self.pool)
            .await?;
        let token = random_id();
        sqlx::query("INSERT INTO devices (token_hash, user_id, created_at) VALUES (?, ?, ?)")
            .bind(token_hash(&token))
            .bind(user_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        let cookie = Cookie::build((self.cookie_name(), token))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure_cookies)
            .path("/")
            .max_age(Duration::days(DEVICE_LIFETIME_DAYS))
            .build();
        Ok(HeaderValue::from_str(&cookie.to_string())?)
    }
}
