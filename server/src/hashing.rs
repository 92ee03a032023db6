//! Password hashing with argon2id, off the async runtime and with bounded concurrency, so a login
//! storm queues for the hasher instead of starving the dashboard. The permit travels into the
//! blocking task and is released when the hash ends, not when whoever asked stops waiting (a client
//! that hangs up), so no more hashes than the bound ever run; and the wait for one is bounded too.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::domain::Password;

/// OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// At most this many hashes run at once (each takes 19 MiB and tens of milliseconds of a core).
const CONCURRENT_HASHES: usize = 2;
/// The longest a hash waits for a permit: past it the caller is told the hasher is busy, rather
/// than queued behind a storm without end.
const PERMIT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("the hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("every hashing permit stayed taken for {0:?}")]
    Busy(Duration),
    #[error("the hasher is shut down: {0}")]
    Closed(#[from] AcquireError),
}

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    permit_wait: Duration,
    /// Hashes running right now (for `/metrics`).
    running: Arc<AtomicUsize>,
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

/// Counts a hash as running for as long as it is alive (inside the blocking task).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(counter))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl PasswordHasher {
    pub fn new() -> Result<Self, HashingError> {
        Self::with_bounds(CONCURRENT_HASHES, PERMIT_WAIT)
    }

    fn with_bounds(concurrent: usize, permit_wait: Duration) -> Result<Self, HashingError> {
        let dummy = format!("dummy-{}", SaltString::generate(&mut OsRng).as_str());
        Ok(Self {
            permits: Arc::new(Semaphore::new(concurrent)),
            permit_wait,
            running: Arc::new(AtomicUsize::new(0)),
            dummy_hash: hash_blocking(&dummy)?.into(),
        })
    }

    /// How many hashes are running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, HashingError> {
        tokio::time::timeout(self.permit_wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| HashingError::Busy(self.permit_wait))?
            .map_err(HashingError::from)
    }

    /// Runs `work` on the blocking pool holding `permit` until it is done.
    async fn run<T: Send + 'static>(
        &self,
        permit: OwnedSemaphorePermit,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashingError> {
        let running = Arc::clone(&self.running);
        Ok(tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _running = Running::start(&running);
            work()
        })
        .await?)
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        let permit = self.permit().await?;
        let password = password.expose().to_owned();
        self.run(permit, move || hash_blocking(&password)).await?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none.
    /// Returns false in the second case, after the same work.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashingError> {
        let permit = self.permit().await?;
        let known = stored.is_some();
        let phc = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        let password = password.to_owned();
        let matches = self
            .run(permit, move || verify_blocking(&password, &phc))
            .await?;
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

    #[tokio::test]
    async fn an_abandoned_hash_keeps_its_permit_until_it_ends() {
        let hasher = PasswordHasher::with_bounds(1, Duration::from_secs(30)).expect("hasher");
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let permit = hasher.permit().await.expect("the only permit");
        // Work that ends when told; its caller gives up at once, as a handler whose client hung up.
        let abandoned =
            tokio::time::timeout(Duration::ZERO, hasher.run(permit, move || finished.recv())).await;
        assert!(abandoned.is_err(), "abandoned while the work runs");
        assert_eq!(hasher.permits.available_permits(), 0, "still held");
        finish.send(()).expect("the work listens");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while hasher.permits.available_permits() == 0 {
            assert!(std::time::Instant::now() < deadline, "never released");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(hasher.running(), 0);
    }

    #[tokio::test]
    async fn the_wait_for_a_permit_is_bounded() {
        let hasher = PasswordHasher::with_bounds(1, Duration::from_millis(50)).expect("hasher");
        let held = hasher.permit().await.expect("the only permit");
        assert!(matches!(
            hasher.verify("anything", None).await,
            Err(HashingError::Busy(_))
        ));
        drop(held);
        assert!(!hasher.verify("anything", None).await.expect("runs"));
    }
}
