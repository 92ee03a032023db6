//! The user accounts: stored in SQLite, passwords as argon2id hashes.

use ctguard_app::auth::Role;
use sqlx::SqlitePool;

use crate::domain::Username;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    pub role: RoleColumn,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `Role` as stored in its TEXT column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleColumn(pub Role);

impl TryFrom<String> for RoleColumn {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse().map(Self)
    }
}

impl UserRecord {
    pub fn role(&self) -> Role {
        self.role.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0} already exists")]
    Exists(String),
    #[error("no user {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct UserStore {
    pool: SqlitePool,
}

const COLUMNS: &str = "id, username, password_hash, role, disabled, created_at, updated_at";

impl UserStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub async fn create(
        &self,
        username: &Username,
        password_hash: &str,
        role: Role,
        now: i64,
    ) -> Result<UserRecord, UserError> {
        let inserted = sqlx::query_as::<_, UserRecord>(&format!(
            "INSERT INTO users (username, password_hash, role, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        ))
        .bind(username.as_str())
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .bind(now)
        .fetch_one(&self.pool)
        .await;
        match inserted {
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                Err(UserError::Exists(username.to_string()))
            }
            other => Ok(other?),
        }
    }

    pub async fn find(&self, username: &str) -> Result<Option<UserRecord>, UserError> {
        Ok(sqlx::query_as::<_, UserRecord>(&format!(
            "SELECT {COLUMNS} FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn get(&self, username: &Username) -> Result<UserRecord, UserError> {
        self.find(username.as_str())
            .await?
            .ok_or_else(|| UserError::NotFound(username.to_string()))
    }

    pub async fn list(&self) -> Result<Vec<UserRecord>, UserError> {
        Ok(sqlx::query_as::<_, UserRecord>(&format!(
            "SELECT {COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn count(&self) -> Result<i64, UserError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
        now: i64,
    ) -> Result<(), UserError> {
        self.update(
            username,
            "password_hash = ?, updated_at = ?",
            password_hash.to_owned(),
            now,
        )
        .await
    }

    pub async fn set_role(
        &self,
        username: &Username,
        role: Role,
        now: i64,
    ) -> Result<(), UserError> {
        self.update(
            username,
            "role = ?, updated_at = ?",
            role.as_str().to_owned(),
            now,
        )
        .await
    }

    pub async fn set_disabled(
        &self,
        username: &Username,
        disabled: bool,
        now: i64,
    ) -> Result<(), UserError> {
        self.update(username, "disabled = ?, updated_at = ?", disabled, now)
            .await
    }

    async fn update<T>(
        &self,
        username: &Username,
        assignments: &str,
        value: T,
        now: i64,
    ) -> Result<(), UserError>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send,
    {
        let result = sqlx::query(&format!(
            "UPDATE users SET {assignments} WHERE username = ?"
        ))
        .bind(value)
        .bind(now)
        .bind(username.as_str())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(UserError::NotFound(username.to_string()));
        }
        Ok(())
    }
}
