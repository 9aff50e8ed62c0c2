//! The store's error type.

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection URL could not be parsed.
    #[error("invalid PostgreSQL URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The database could not be reached.
    #[error("connecting to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    /// A migration failed; the schema is left at the last successful version.
    #[error("running database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// A row with the same unique key exists (the index name says which key).
    #[error("unique constraint {constraint} violated")]
    UniqueViolation {
        /// The violated index or constraint.
        constraint: String,
    },
    /// Any other query failure.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.code().as_deref() == Some("23505")
        {
            return Error::UniqueViolation {
                constraint: db.constraint().unwrap_or_default().to_owned(),
            };
        }
        Error::Query(err)
    }
}
