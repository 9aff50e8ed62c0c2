//! Uploaded files (template sources).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{Error, Store};

/// A row of `files`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FileRow {
    pub id: Uuid,
    /// sha256 of `data`, hex.
    pub hash: String,
    pub created_by: Uuid,
    pub mimetype: String,
    pub data: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Stores a file and returns its id; the same content uploaded again by the same user
    /// returns the first upload's id.
    pub async fn insert_file(
        &self,
        hash: &str,
        created_by: Uuid,
        mimetype: &str,
        data: &[u8],
    ) -> Result<Uuid, Error> {
        Ok(sqlx::query_scalar(
            "INSERT INTO files (id, hash, created_by, mimetype, data)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (created_by, hash) DO UPDATE SET hash = EXCLUDED.hash
             RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(hash)
        .bind(created_by)
        .bind(mimetype)
        .bind(data)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The file with this id.
    pub async fn file(&self, id: Uuid) -> Result<Option<FileRow>, Error> {
        Ok(sqlx::query_as("SELECT * FROM files WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }
}
