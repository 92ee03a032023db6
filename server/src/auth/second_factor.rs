//! The second factor: a TOTP secret per user (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of
//! skew either way, what every authenticator app does), enrolled through a QR code and confirmed by
//! a first code before it counts; each step's code is accepted once. Recovery codes (ten, 120
//! random bits each, stored as SHA-256) sign in once each without the app.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;
use totp_rs::{Builder, Secret, Totp};

/// What authenticator apps show as the account's issuer.
const ISSUER: &str = "ctguard";
/// Bytes of a new secret: RFC 4226's recommended 160 bits.
const SECRET_BYTES: usize = 20;
/// Recovery codes issued at each enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code: no look-alikes (0/o, 1/i/l), 31 of them.
const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// 24 characters of 31: 118.9 bits, past the 112 that let a plain hash store them (ASVS 6.5.2).
const RECOVERY_CHARS: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecondFactorError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the stored secret is unusable: {0}")]
    Secret(String),
    #[error("cannot draw the QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("a second factor is in force already")]
    AlreadyEnrolled,
    #[error("no enrolment is waiting for its confirmation")]
    NothingToConfirm,
}

/// A new, not yet confirmed secret, as the enrolment shows it.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub base32: String,
    pub otpauth_url: String,
    pub qr_svg: String,
}

/// How a code was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Totp,
    /// A recovery code, now spent; this many remain.
    RecoveryCode {
        left: u32,
    },
}

impl Accepted {
    /// The audit log's words for it.
    pub fn describe(self) -> String {
        match self {
            Self::Totp => "with a second-factor code".to_owned(),
            Self::RecoveryCode { left } => format!("with a recovery code ({left} left)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SecondFactorStore {
    pool: SqlitePool,
}

fn totp(secret: impl Into<Secret>, account: &str) -> Result<Totp, SecondFactorError> {
    Builder::new()
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| SecondFactorError::Secret(e.to_string()))
}

fn stored_totp(base32: &str, account: &str) -> Result<Totp, SecondFactorError> {
    let secret =
        Secret::try_from_base32(base32).map_err(|e| SecondFactorError::Secret(e.to_string()))?;
    totp(secret, account)
}

/// The step `code` matches at `now` (this step or one either side), if any. Only digits and
/// spaces are a TOTP code; anything else never matches.
fn matching_step(totp: &Totp, code: &str, now: i64) -> Option<i64> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    totp.check(&digits, now)
        .and_then(|step| i64::try_from(step).ok())
}

/// A recovery code as stored: lower case, without the dashes and spaces it is shown and typed
/// with.
fn normalise_recovery(code: &str) -> Option<String> {
    let text: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (text.len() == RECOVERY_CHARS && text.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)))
        .then_some(text)
}

fn recovery_hash(normalised: &str) -> String {
    Sha256::digest(normalised.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new recovery code, grouped by four for reading (`abcd-efgh-…`).
fn new_recovery_code() -> String {
    let mut chars = Vec::with_capacity(RECOVERY_CHARS);
    // Rejection sampling: 248 = 8 × 31, so every character is equally likely.
    while chars.len() < RECOVERY_CHARS {
        let mut byte = [0u8; 1];
        OsRng.fill_bytes(&mut byte);
        if byte[0] < 248 {
            chars.push(RECOVERY_ALPHABET[usize::from(byte[0]) % RECOVERY_ALPHABET.len()]);
        }
    }
    chars
        .chunks(4)
        .map(|group| String::from_utf8_lossy(group).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

fn qr_svg(url: &str) -> Result<String, SecondFactorError> {
    let code = qrcode::QrCode::new(url.as_bytes())?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build())
}

impl SecondFactorStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Whether the user has a confirmed second factor.
    pub async fn enrolled(&self, user_id: i64) -> Result<bool, SecondFactorError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM second_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Recovery codes of the user not used yet.
    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<u32, SecondFactorError> {
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u32::try_from(left).unwrap_or(0))
    }

    /// A new secret for the user, waiting for its first code; it replaces one that waited before.
    /// Refused while a confirmed one is in force (it must be removed first).
    pub async fn begin(
        &self,
        user_id: i64,
        username: &str,
        now: i64,
    ) -> Result<NewSecret, SecondFactorError> {
        if self.enrolled(user_id).await? {
            return Err(SecondFactorError::AlreadyEnrolled);
        }
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        let totp = totp(bytes, username)?;
        let base32 = totp.secret().to_base32();
        let otpauth_url = totp
            .to_url()
            .map_err(|e| SecondFactorError::Secret(e.to_string()))?;
        sqlx::query(
            "INSERT INTO second_factors (user_id, secret, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id) DO UPDATE SET secret = ?2, created_at = ?3,
                 confirmed_at = NULL, last_step = -1
             WHERE confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(&base32)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(NewSecret {
            qr_svg: qr_svg(&otpauth_url)?,
            base32,
            otpauth_url,
        })
    }

    /// Confirms the waiting secret with a code from it: it is in force from now on, and the
    /// answer is a new set of recovery codes (the old ones are void). `None`: the code is wrong.
    pub async fn confirm(
        &self,
        user_id: i64,
        username: &str,
        code: &str,
        now: i64,
    ) -> Result<Option<Vec<String>>, SecondFactorError> {
        let waiting: Option<String> = sqlx::query_scalar(
            "SELECT secret FROM second_factors WHERE user_id = ? AND confirmed_at IS NULL",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(secret) = waiting else {
            return Err(SecondFactorError::NothingToConfirm);
        };
        let Some(step) = matching_step(&stored_totp(&secret, username)?, code, now) else {
            return Ok(None);
        };
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let mut tx = self.pool.begin().await?;
        let confirmed = sqlx::query(
            "UPDATE second_factors SET confirmed_at = ?, last_step = ?
             WHERE user_id = ? AND secret = ? AND confirmed_at IS NULL",
        )
        .bind(now)
        .bind(step)
        .bind(user_id)
        .bind(&secret)
        .execute(&mut *tx)
        .await?;
        if confirmed.rows_affected() == 0 {
            // Another request confirmed or replaced it meanwhile.
            return Err(SecondFactorError::NothingToConfirm);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for code in &codes {
            let normalised = normalise_recovery(code).unwrap_or_default();
            sqlx::query(
                "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
            )
            .bind(user_id)
            .bind(recovery_hash(&normalised))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Some(codes))
    }

    /// Checks a sign-in's second step: a TOTP code of a step newer than any accepted before (the
    /// step is recorded in the same statement that checks it, so two requests with one code
    /// cannot both pass), or an unused recovery code (spent by the check). `None`: refused.
    pub async fn verify(
        &self,
        user_id: i64,
        username: &str,
        code: &str,
        now: i64,
    ) -> Result<Option<Accepted>, SecondFactorError> {
        let secret: Option<String> = sqlx::query_scalar(
            "SELECT secret FROM second_factors WHERE user_id = ? AND confirmed_at IS NOT NULL",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        if let Some(step) = matching_step(&stored_totp(&secret, username)?, code, now) {
            let fresh = sqlx::query(
                "UPDATE second_factors SET last_step = ?1
                 WHERE user_id = ?2 AND confirmed_at IS NOT NULL AND last_step < ?1",
            )
            .bind(step)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
            return Ok((fresh.rows_affected() == 1).then_some(Accepted::Totp));
        }
        let Some(normalised) = normalise_recovery(code) else {
            return Ok(None);
        };
        let spent = sqlx::query(
            "UPDATE recovery_codes SET used_at = ?
             WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(recovery_hash(&normalised))
        .execute(&self.pool)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(Some(Accepted::RecoveryCode {
            left: self.recovery_codes_left(user_id).await?,
        }))
    }

    /// Removes the user's second factor (confirmed or waiting) and recovery codes; true if there
    /// was one.
    pub async fn remove(&self, user_id: i64) -> Result<bool, SecondFactorError> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM second_factors WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_long_random_and_read_back_however_typed() {
        let code = new_recovery_code();
        assert_eq!(
            code.len(),
            RECOVERY_CHARS + RECOVERY_CHARS / 4 - 1,
            "{code}"
        );
        assert_ne!(code, new_recovery_code());
        let normalised = normalise_recovery(&code).expect("a code of ours");
        assert_eq!(
            normalise_recovery(&code.to_ascii_uppercase().replace('-', " ")),
            Some(normalised)
        );
        assert_eq!(normalise_recovery("123456"), None);
        assert_eq!(normalise_recovery(&"0".repeat(RECOVERY_CHARS)), None);
    }

    /// The time step a code for `now` belongs to (30 s steps).
    fn step_of(now: i64) -> i64 {
        now.div_euclid(30)
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let totp = totp(vec![7; SECRET_BYTES], "ada").expect("valid");
        let now = 1_800_000_015;
        let code = |at: i64| {
            totp.generate(u64::try_from(at).expect("positive"))
                .to_string()
        };
        assert_eq!(matching_step(&totp, &code(now), now), Some(step_of(now)));
        assert_eq!(
            matching_step(&totp, &code(now - 30), now),
            Some(step_of(now) - 1)
        );
        assert_eq!(
            matching_step(&totp, &code(now + 30), now),
            Some(step_of(now) + 1)
        );
        assert_eq!(matching_step(&totp, &code(now - 60), now), None);
        let spaced = format!("{} {}", &code(now)[..3], &code(now)[3..]);
        assert_eq!(matching_step(&totp, &spaced, now), Some(step_of(now)));
        assert_eq!(matching_step(&totp, "abcdef", now), None);
    }
}
