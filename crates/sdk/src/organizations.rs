//! Organizations. One default organization exists; templates and members belong to it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::OrganizationId;

/// An organization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Its id.
    pub id: OrganizationId,
    /// Its unique name, used in URLs.
    pub name: String,
    /// Its human name.
    pub display_name: String,
    /// A description.
    pub description: String,
    /// An icon URL or path.
    pub icon: String,
    /// Whether this is the deployment's default organization.
    pub is_default: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}
