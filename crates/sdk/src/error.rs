//! The body of every API error (and of some plain messages): `{message, detail, validations}`.

use serde::{Deserialize, Serialize};

/// Coder's generic response body, used for errors and for simple confirmations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// A sentence for the user saying what happened.
    pub message: String,
    /// More detail, often the underlying error; empty when there is none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Per-field problems with the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<ValidationError>,
}

/// One invalid field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// The JSON field name.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl Response {
    /// A response with only a message.
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }
}
