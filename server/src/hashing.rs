//! Password hashing with argon2id, off the async runtime and with bounded concurrency, so a login
//! storm queues for the hasher instead of starving the dashboard.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// At most this many hashes run at once (each takes 19 MiB and tens of milliseconds of a core).
const CONCURRENT_HASHES: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// Verified against when the username does not exist, so that unknown and known usernames
    /// take the same time to refuse.
    dummy_hash: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &str) -> Result<String, HashingError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashingError::Argon2(e.to_string()))
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

impl PasswordHasher {
    pub fn new() -> Result<Self, HashingError> {
        let dummy = format!("dummy-{}", SaltString::generate(&mut OsRng).as_str());
        Ok(Self {
            permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
            dummy_hash: hash_blocking(&dummy)?.into(),
        })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let _permit = self.permits.acquire().await;
        let password = password.expose().to_owned();
        tokio::task::spawn_blocking(move || hash_blocking(&password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none.
    /// Returns false in the second case, after the same work.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashingError> {
        let _permit = self.permits.acquire().await;
        let known = stored.is_some();
        let phc = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_blocking(&password, &phc)).await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let hasher = PasswordHasher::new().expect("hasher");
        let password = Password::parse("correct horse battery".into()).expect("valid");
        let hash = hasher.hash(&password).await.expect("hashes");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            hasher
                .verify("correct horse battery", Some(&hash))
                .await
                .expect("runs")
        );
        assert!(
            !hasher
                .verify("wrong horse battery", Some(&hash))
                .await
                .expect("runs")
        );
        assert!(
            !hasher
                .verify("correct horse battery", None)
                .await
                .expect("runs")
        );
        assert!(
            !hasher
                .verify("x", Some("not a phc string"))
                .await
                .expect("runs")
        );
    }
}
