//! Authorization: the one place that decides what each role may do to each resource.
//!
//! Handlers name the action and the resource and call [`Subject::authorize`]; nothing else
//! compares roles. A subject that may not even read a resource gets 404, so the answer never
//! reveals that it exists; one that may read it but not change it gets 403.

use std::collections::BTreeSet;

use sdk::Role;
use uuid::Uuid;

use crate::error::ApiError;

/// What is being done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Read,
    Create,
    Update,
    Delete,
    /// Reach a workspace's agent over a tunnel (SSH, port forwarding, apps).
    Connect,
}

/// What it is being done to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    /// The list of all users (read) or a new user (create).
    Users,
    /// One user's profile.
    User(Uuid),
    /// One user's status (suspend, activate).
    UserStatus(Uuid),
    /// One user's roles.
    UserRoles(Uuid),
    /// The API keys and tokens owned by a user.
    ApiKeys { owner: Uuid },
    /// Every user's API tokens at once.
    AllApiKeys,
    /// An organization the subject is or is not a member of.
    Organization(Uuid),
    /// Deployment-wide settings and diagnostics.
    Deployment,
    /// The templates (and template versions) of an organization.
    Templates { organization: Uuid },
    /// Uploaded files: read by their uploader; created by template authors.
    File { owner: Uuid },
    /// A workspace (and its builds): its owner uses it; template admins read every one.
    Workspace { owner: Uuid, organization: Uuid },
    /// Workspace proxies: managed by owners only (everyone reads the regions list, which is
    /// not this resource).
    WorkspaceProxies,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "change",
            Action::Delete => "delete",
            Action::Connect => "connect to",
        }
    }
}

impl Resource {
    fn noun(self) -> &'static str {
        match self {
            Resource::Users => "users",
            Resource::User(_) => "this user",
            Resource::UserStatus(_) => "this user's status",
            Resource::UserRoles(_) => "this user's roles",
            Resource::ApiKeys { .. } => "these API tokens",
            Resource::AllApiKeys => "every user's API tokens",
            Resource::Organization(_) => "this organization",
            Resource::Deployment => "the deployment's settings",
            Resource::Templates { .. } => "templates",
            Resource::File { .. } => "files",
            Resource::Workspace { .. } => "this workspace",
            Resource::WorkspaceProxies => "workspace proxies",
        }
    }
}

/// Who is acting: an authenticated user with its roles (member always included).
#[derive(Clone, Debug)]
pub(crate) struct Subject {
    pub(crate) user_id: Uuid,
    pub(crate) roles: BTreeSet<Role>,
    pub(crate) organization_ids: Vec<Uuid>,
}

impl Subject {
    pub(crate) fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the subject may perform `action` on `resource`.
    pub(crate) fn can(&self, action: Action, resource: Resource) -> bool {
        use Action::*;
        use Resource::*;
        if self.has_role(Role::Owner) {
            return true;
        }
        if action == Connect {
            // Only a workspace's owner (and deployment owners, above) may reach into it.
            return matches!(resource, Workspace { owner, organization }
                if owner == self.user_id && self.organization_ids.contains(&organization));
        }
        let user_admin = self.has_role(Role::UserAdmin);
        let template_admin = self.has_role(Role::TemplateAdmin);
        match (resource, action) {
            (Users, Read) => user_admin || template_admin,
            (Users, Create) => user_admin,
            (Users, _) => false,
            (User(id), Read) => id == self.user_id || user_admin || template_admin,
            (User(id), Update) => id == self.user_id || user_admin,
            (User(_), Delete) => user_admin,
            (User(_), Create | Connect) => false,
            (UserStatus(_) | UserRoles(_), Read) => true,
            (UserStatus(_) | UserRoles(_), Update) => user_admin,
            (UserStatus(_) | UserRoles(_), _) => false,
            // Tokens are personal: not even a user admin reads someone else's.
            (ApiKeys { owner }, _) => owner == self.user_id,
            (AllApiKeys, _) => false,
            (Organization(id), Read) => self.organization_ids.contains(&id),
            (Organization(_), _) => false,
            (Deployment | WorkspaceProxies, _) => false,
            (Templates { organization }, Read) => self.organization_ids.contains(&organization),
            (Templates { organization }, _) => {
                template_admin && self.organization_ids.contains(&organization)
            }
            (File { owner }, Read) => owner == self.user_id || template_admin,
            (File { .. }, Create) => template_admin,
            (File { .. }, _) => false,
            (
                Workspace {
                    owner,
                    organization,
                },
                Read,
            ) => {
                owner == self.user_id
                    || (template_admin && self.organization_ids.contains(&organization))
            }
            (
                Workspace {
                    owner,
                    organization,
                },
                _,
            ) => owner == self.user_id && self.organization_ids.contains(&organization),
        }
    }

    /// `Ok` when allowed; 404 when the subject may not read the resource at all, else 403.
    pub(crate) fn authorize(&self, action: Action, resource: Resource) -> Result<(), ApiError> {
        let forbidden = || {
            ApiError::forbidden().detail(format!(
                "Your roles do not allow you to {} {}.",
                action.verb(),
                resource.noun()
            ))
        };
        if self.can(action, resource) {
            Ok(())
        } else if action != Action::Read && self.can(Action::Read, resource) {
            Err(forbidden())
        } else if matches!(
            resource,
            Resource::Users
                | Resource::AllApiKeys
                | Resource::Deployment
                | Resource::WorkspaceProxies
        ) {
            // Collections are known to exist; hiding them would only confuse.
            Err(forbidden())
        } else {
            Err(ApiError::not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(roles: &[Role]) -> Subject {
        Subject {
            user_id: Uuid::from_u128(1),
            roles: roles.iter().copied().chain([Role::Member]).collect(),
            organization_ids: vec![Uuid::from_u128(100)],
        }
    }

    fn check(roles: &[Role], action: Action, resource: Resource, expected: Option<u16>) {
        let got = subject(roles)
            .authorize(action, resource)
            .err()
            .map(|err| err.status().as_u16());
        assert_eq!(got, expected, "{roles:?} {action:?} {resource:?}");
    }

    #[test]
    fn members_see_only_themselves() {
        let me = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        check(&[], Action::Read, Resource::User(me), None);
        check(&[], Action::Read, Resource::User(other), Some(404));
        check(&[], Action::Read, Resource::Users, Some(403));
        check(&[], Action::Update, Resource::UserStatus(other), Some(403));
        check(&[], Action::Create, Resource::ApiKeys { owner: me }, None);
        check(
            &[],
            Action::Read,
            Resource::ApiKeys { owner: other },
            Some(404),
        );
    }

    #[test]
    fn admins_have_their_share() {
        let other = Uuid::from_u128(2);
        check(&[Role::UserAdmin], Action::Create, Resource::Users, None);
        check(
            &[Role::UserAdmin],
            Action::Update,
            Resource::UserStatus(other),
            None,
        );
        check(
            &[Role::UserAdmin],
            Action::Read,
            Resource::ApiKeys { owner: other },
            Some(404),
        );
        check(&[Role::TemplateAdmin], Action::Read, Resource::Users, None);
        check(
            &[Role::TemplateAdmin],
            Action::Create,
            Resource::Users,
            Some(403),
        );
        check(
            &[Role::Owner],
            Action::Delete,
            Resource::ApiKeys { owner: other },
            None,
        );
        check(&[Role::Owner], Action::Read, Resource::AllApiKeys, None);
    }

    #[test]
    fn templates_are_read_by_members_and_written_by_template_admins() {
        let organization = Uuid::from_u128(100);
        let templates = Resource::Templates { organization };
        check(&[], Action::Read, templates, None);
        check(&[], Action::Create, templates, Some(403));
        check(&[Role::TemplateAdmin], Action::Create, templates, None);
        check(&[Role::UserAdmin], Action::Delete, templates, Some(403));
        let elsewhere = Resource::Templates {
            organization: Uuid::from_u128(101),
        };
        check(&[Role::TemplateAdmin], Action::Read, elsewhere, Some(404));
        check(
            &[],
            Action::Create,
            Resource::File {
                owner: Uuid::from_u128(1),
            },
            Some(403),
        );
    }

    #[test]
    fn organizations_need_membership() {
        check(
            &[],
            Action::Read,
            Resource::Organization(Uuid::from_u128(100)),
            None,
        );
        check(
            &[],
            Action::Read,
            Resource::Organization(Uuid::from_u128(101)),
            Some(404),
        );
    }
}
