//! Password hashing with argon2id, off the async threads (a hash takes tens of milliseconds).

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sdk::Secret;

use crate::error::ApiError;

/// Hashes a password into a PHC string.
pub(crate) async fn hash(password: &Secret) -> Result<String, ApiError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| ApiError::internal(HashError(err.to_string())))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Whether `password` matches `hash`. With no hash (unknown user) it still spends the time of a
/// real check, so response times do not reveal which emails exist.
pub(crate) async fn verify(password: &Secret, hash: Option<&str>) -> Result<bool, ApiError> {
    let password = password.clone();
    let hash = hash.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let argon2 = Argon2::default();
        match hash.as_deref().map(PasswordHash::new) {
            Some(Ok(parsed)) => Ok(argon2
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()),
            Some(Err(err)) => Err(ApiError::internal(HashError(err.to_string()))),
            None => {
                let salt = SaltString::generate(&mut OsRng);
                let _ = argon2.hash_password(password.expose().as_bytes(), &salt);
                Ok(false)
            }
        }
    })
    .await
    .map_err(ApiError::internal)?
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
struct HashError(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let password = Secret::new("correct horse");
        let hash = hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify(&password, Some(&hash)).await.unwrap());
        assert!(!verify(&Secret::new("wrong"), Some(&hash)).await.unwrap());
        assert!(!verify(&password, None).await.unwrap());
    }
}
