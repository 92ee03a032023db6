//! Logins: one row per signed-in browser, the server's own record of every session, so that an
//! admin can list and end them, and disabling a user or changing their role ends theirs. A row is
//! active only while its session could still be used: signing in again from the same browser
//! ends the one before, and expired rows are swept (periodically, and before any listing).

use std::time::Duration;

use ctguard_app::auth::{CurrentUser, Role};
use sqlx::SqlitePool;
use tokio::task::JoinHandle;

use crate::{auth::SessionPolicy, clock::SharedClock};

/// Why a login ended; stored, shown to admins, and written to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Logout,
    Idle,
    Absolute,
    EndedByAdmin,
    UserChanged,
    /// The same browser signed in again (its session cookie named this login).
    SignedInAgain,
    /// Its user ended it from their own account page.
    EndedByUser,
    /// Its user changed their password from another session.
    PasswordChanged,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Idle => "idle timeout",
            Self::Absolute => "absolute lifetime",
            Self::EndedByAdmin => "ended by an admin",
            Self::UserChanged => "user disabled or changed",
            Self::SignedInAgain => "signed in again",
            Self::EndedByUser => "ended by its user",
            Self::PasswordChanged => "password changed",
        }
    }
}

/// An active login with its user, as the authentication layer needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveLogin {
    pub id: String,
    pub user_id: i64,
    pub username: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: i64,
    pub last_seen: i64,
    pub client_addr: String,
    pub user_agent: String,
    /// It may do nothing but enrol a second factor (see the migration that added it).
    pub enrolment_due: bool,
}

impl ActiveLogin {
    pub fn current_user(&self) -> Option<CurrentUser> {
        Some(CurrentUser {
            id: self.user_id,
            username: self.username.clone(),
            role: self.role.parse::<Role>().ok()?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct LoginStore {
    pool: SqlitePool,
}

const ACTIVE: &str = "SELECT l.id, l.user_id, u.username, u.role, u.disabled, l.created_at,
        l.last_seen, l.client_addr, l.user_agent, l.enrolment_due
     FROM logins l JOIN users u ON u.id = l.user_id
     WHERE l.ended_at IS NULL";

impl LoginStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub async fn create(
        &self,
        user_id: i64,
        now: i64,
        client_addr: &str,
        user_agent: &str,
    ) -> Result<String, sqlx::Error> {
        self.create_restricted(user_id, now, client_addr, user_agent, false)
            .await
    }

    /// As [`Self::create`]; `enrolment_due`: the login may do nothing but enrol a second factor
    /// until [`Self::enrolment_done`].
    pub async fn create_restricted(
        &self,
        user_id: i64,
        now: i64,
        client_addr: &str,
        user_agent: &str,
        enrolment_due: bool,
    ) -> Result<String, sqlx::Error> {
        let id = random_id();
        sqlx::query(
            "INSERT INTO logins
                 (id, user_id, created_at, last_seen, client_addr, user_agent, enrolment_due)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(user_id)
        .bind(now)
        .bind(now)
        .bind(client_addr)
        .bind(user_agent)
        .bind(enrolment_due)
        .execute(&self.pool)
        .await?;
        Ok(id)
    }

    /// The user has a second factor now: none of their logins is restricted any more.
    pub async fn enrolment_done(&self, user_id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE logins SET enrolment_due = 0 WHERE user_id = ? AND ended_at IS NULL")
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live logins of one user, oldest first (expired ones swept first).
    pub async fn live_of(
        &self,
        user_id: i64,
        now: i64,
        policy: &SessionPolicy,
    ) -> Result<Vec<ActiveLogin>, sqlx::Error> {
        self.sweep_expired(now, policy).await?;
        sqlx::query_as(&format!("{ACTIVE} AND l.user_id = ? ORDER BY l.created_at"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
    }

    /// Ends every active login of a user but one (the session asking); returns how many.
    pub async fn end_others_of(
        &self,
        user_id: i64,
        keep: &str,
        now: i64,
        reason: EndReason,
    ) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE logins SET ended_at = ?, end_reason = ?
             WHERE user_id = ? AND id <> ? AND ended_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(user_id)
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Ends one login if it is `user_id`'s; false when it is not theirs or not active.
    pub async fn end_own(
        &self,
        user_id: i64,
        id: &str,
        now: i64,
        reason: EndReason,
    ) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE logins SET ended_at = ?, end_reason = ?
             WHERE id = ? AND user_id = ? AND ended_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn active(&self, id: &str) -> Result<Option<ActiveLogin>, sqlx::Error> {
        sqlx::query_as(&format!("{ACTIVE} AND l.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// The logins that could still be used now: the expired ones are swept first, so what an
    /// admin is shown (and counts) is what the session check would let in.
    pub async fn all_live(
        &self,
        now: i64,
        policy: &SessionPolicy,
    ) -> Result<Vec<ActiveLogin>, sqlx::Error> {
        self.sweep_expired(now, policy).await?;
        self.all_active().await
    }

    /// Ends every active login the session check would refuse at `now`: a disabled user's (dated
    /// now), and each expired one dated when it expired, with the limit it reached first (the
    /// absolute lifetime or idleness), not when it happened to be noticed. Returns how many.
    pub async fn sweep_expired(
        &self,
        now: i64,
        policy: &SessionPolicy,
    ) -> Result<u64, sqlx::Error> {
        // Capped (at about 34,000 years) so that `created_at + limit` cannot overflow in SQL.
        let secs =
            |limit: Duration| i64::try_from(limit.as_secs()).map_or(1 << 40, |s| s.min(1 << 40));
        let disabled = sqlx::query(
            "UPDATE logins SET ended_at = ?1, end_reason = ?2
             WHERE ended_at IS NULL AND user_id IN (SELECT id FROM users WHERE disabled = 1)",
        )
        .bind(now)
        .bind(EndReason::UserChanged.as_str())
        .execute(&self.pool)
        .await?;
        let expired = sqlx::query(
            "UPDATE logins
             SET ended_at = MIN(created_at + ?2, last_seen + ?3),
                 end_reason = CASE WHEN created_at + ?2 <= last_seen + ?3 THEN ?4 ELSE ?5 END
             WHERE ended_at IS NULL AND (?1 - created_at >= ?2 OR ?1 - last_seen >= ?3)",
        )
        .bind(now)
        .bind(secs(policy.absolute))
        .bind(secs(policy.idle))
        .bind(EndReason::Absolute.as_str())
        .bind(EndReason::Idle.as_str())
        .execute(&self.pool)
        .await?;
        let ended = disabled.rows_affected() + expired.rows_affected();
        Ok(ended)
    }

    /// Sweeps expired logins every quarter of the idle timeout (between 1 s and a minute), so the
    /// table is true even of browsers that never come back.
    pub fn spawn_sweeper(self, clock: SharedClock, policy: SessionPolicy) -> JoinHandle<()> {
        let every = (policy.idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                match self.sweep_expired(clock.now(), &policy).await {
                    Ok(0) => {}
                    Ok(ended) => tracing::info!(ended, "expired logins swept"),
                    Err(error) => tracing::error!(%error, "cannot sweep expired logins"),
                }
            }
        })
    }

    pub async fn all_active(&self) -> Result<Vec<ActiveLogin>, sqlx::Error> {
        sqlx::query_as(&format!("{ACTIVE} ORDER BY u.username, l.created_at"))
            .fetch_all(&self.pool)
            .await
    }

    pub async fn touch(&self, id: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE logins SET last_seen = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends one login; false when it was not active.
    pub async fn end(&self, id: &str, now: i64, reason: EndReason) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE logins SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Ends every active login of a user; returns how many.
    pub async fn end_all_of(
        &self,
        user_id: i64,
        now: i64,
        reason: EndReason,
    ) -> Result<u64, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE logins SET ended_at = ?, end_reason = ? WHERE user_id = ? AND ended_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }
}

/// 128 random bits from the OS, hex-encoded.
pub(crate) fn random_id() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
