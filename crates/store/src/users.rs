//! Users: creation (including the race-free first user), lookups, search, status and roles.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, Store};

/// A row of `users` with the ids of the organizations the user belongs to.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub name: String,
    /// A PHC string; `None` for users without password login.
    pub hashed_password: Option<String>,
    /// `active` or `suspended`.
    pub status: String,
    /// `password` or `none`.
    pub login_type: String,
    /// Deployment-wide roles beyond the implicit `member`.
    pub rbac_roles: Vec<String>,
    pub avatar_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub organization_ids: Vec<Uuid>,
}

/// The fields of a user to insert.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub username: String,
    pub name: String,
    pub hashed_password: Option<String>,
    pub login_type: String,
    pub rbac_roles: Vec<String>,
    /// Organizations to join; the default organization when empty.
    pub organization_ids: Vec<Uuid>,
}

/// Which users to list, one page at a time.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Case-insensitive substring of the username or email.
    pub search: Option<String>,
    /// Only users with this status.
    pub status: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// `SELECT` of a [`UserRow`] followed by the given clauses, as one static string.
macro_rules! select_user {
    ($($clauses:expr),*) => {
        concat!("SELECT u.id, u.email, u.username, u.name, u.hashed_password, u.status,
    u.login_type, u.rbac_roles, u.avatar_url, u.created_at, u.updated_at, u.last_seen_at,
    ARRAY(SELECT m.organization_id FROM organization_members m
          WHERE m.user_id = u.id ORDER BY m.created_at) AS organization_ids
    FROM users u ", $($clauses),*)
    };
}

/// The users a [`UserFilter`] matches: `$1` search pattern, `$2` status.
macro_rules! user_filter {
    () => {
        "WHERE NOT u.deleted
            AND ($1::text IS NULL OR u.username ILIKE $1 OR u.email ILIKE $1)
            AND ($2::text IS NULL OR u.status = $2)"
    };
}

impl Store {
    /// Inserts the first user (the deployment's owner) unless any user exists, atomically:
    /// of two concurrent calls exactly one gets `Some`.
    pub async fn insert_first_user(&self, user: &NewUser) -> Result<Option<UserRow>, Error> {
        let mut tx = self.pool.begin().await?;
        // Serializes concurrent first-user requests; released at commit or rollback.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('coder_first_user'))")
            .execute(&mut *tx)
            .await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE NOT deleted)")
                .fetch_one(&mut *tx)
                .await?;
        if exists {
            return Ok(None);
        }
        insert_user_in(&mut tx, user).await?;
        tx.commit().await?;
        self.user_by_id(user.id).await
    }

    /// Inserts a user and its organization memberships.
    pub async fn insert_user(&self, user: &NewUser) -> Result<UserRow, Error> {
        let mut tx = self.pool.begin().await?;
        insert_user_in(&mut tx, user).await?;
        tx.commit().await?;
        self.user_by_id(user.id)
            .await?
            .ok_or(Error::Query(sqlx::Error::RowNotFound))
    }

    /// Whether any user exists.
    pub async fn has_users(&self) -> Result<bool, Error> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE NOT deleted)")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRow>, Error> {
        Ok(
            sqlx::query_as(select_user!("WHERE u.id = $1 AND NOT u.deleted"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The user with this username (case-insensitive).
    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, Error> {
        Ok(sqlx::query_as(select_user!(
            "WHERE lower(u.username) = lower($1) AND NOT u.deleted"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The user with this email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, Error> {
        Ok(sqlx::query_as(select_user!(
            "WHERE lower(u.email) = lower($1) AND NOT u.deleted"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// One page of users ordered by username, and the total number matching.
    pub async fn list_users(&self, filter: &UserFilter) -> Result<(Vec<UserRow>, i64), Error> {
        let pattern = filter
            .search
            .as_deref()
            .map(|search| format!("%{}%", escape_like(search)));
        let rows = sqlx::query_as(select_user!(
            user_filter!(),
            " ORDER BY lower(u.username) LIMIT $3 OFFSET $4"
        ))
        .bind(&pattern)
        .bind(&filter.status)
        .bind(filter.limit)
        .bind(filter.offset)
        .fetch_all(&self.pool)
        .await?;
        let count = sqlx::query_scalar(concat!("SELECT count(*) FROM users u ", user_filter!()))
            .bind(&pattern)
            .bind(&filter.status)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows, count))
    }

    /// Sets a user's status; `None` when the user does not exist.
    pub async fn update_user_status(
        &self,
        id: Uuid,
        status: &str,
    ) -> Result<Option<UserRow>, Error> {
        let updated = sqlx::query(
            "UPDATE users SET status = $2, updated_at = now() WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .bind(status)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        self.user_by_id(id).await
    }

    /// Replaces a user's deployment-wide roles; `None` when the user does not exist.
    pub async fn update_user_roles(
        &self,
        id: Uuid,
        roles: &[String],
    ) -> Result<Option<UserRow>, Error> {
        let updated = sqlx::query(
            "UPDATE users SET rbac_roles = $2, updated_at = now() WHERE id = $1 AND NOT deleted",
        )
        .bind(id)
        .bind(roles)
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        self.user_by_id(id).await
    }

    /// Records that a user made a request now.
    pub async fn touch_user_last_seen(&self, id: Uuid) -> Result<(), Error> {
        sqlx::query("UPDATE users SET last_seen_at = now() WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

async fn insert_user_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user: &NewUser,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO users (id, email, username, name, hashed_password, login_type, rbac_roles)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user.id)
    .bind(&user.email)
    .bind(&user.username)
    .bind(&user.name)
    .bind(&user.hashed_password)
    .bind(&user.login_type)
    .bind(&user.rbac_roles)
    .execute(&mut **tx)
    .await?;
    if user.organization_ids.is_empty() {
        sqlx::query(
            "INSERT INTO organization_members (organization_id, user_id)
             SELECT id, $1 FROM organizations WHERE is_default",
        )
        .bind(user.id)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO organization_members (organization_id, user_id)
             SELECT unnest($2::uuid[]), $1",
        )
        .bind(user.id)
        .bind(&user.organization_ids)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Escapes `%`, `_` and `\` so user input matches literally inside a LIKE pattern.
fn escape_like(input: &str) -> String {
    let mut escaped = String::with_capacity(input.len());
    for c in input.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    fn check(input: &str, expected: &str) {
        assert_eq!(escape_like(input), expected);
    }

    #[test]
    fn like_patterns_are_literal() {
        check("alice", "alice");
        check("50%_off\\", "50\\%\\_off\\\\");
    }
}
