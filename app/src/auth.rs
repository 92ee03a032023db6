//! Who is signed in and what each role may do: the one table of permissions, shared by the
//! server (which enforces it) and the UI (which only uses it to hide what would be refused).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Roles, ordered: each may do everything the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the live table and the suspicious sources.
    Viewer,
    /// Also blocks, unblocks and deletes entries.
    Operator,
    /// Also tunes sysctls, manages users and reads the audit log.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" => Ok(Self::Admin),
            other => Err(format!("{other:?} is not a role (viewer, operator, admin)")),
        }
    }
}

/// The signed-in user, as the server's authentication layer puts it on each request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

impl CurrentUser {
    pub fn may(&self, permission: Permission) -> bool {
        self.role >= permission.minimum_role()
    }
}

/// Everything the panel lets someone do. Each HTTP endpoint maps to exactly one of these (the
/// server's route table), and each has exactly one minimum role (below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// The dashboard, the live feed, the suspicious sources, the blocks list.
    ViewTable,
    /// Block and unblock sources, delete entries.
    Block,
    /// Manage accounts: list, add, change roles, disable, end sessions.
    ManageUsers,
    /// Read and export the audit log.
    ViewAudit,
    /// Change (and revert) the allowlisted sysctls on the Tuning page.
    Tune,
    /// One's own account: its sessions, password and second factor. Everyone's, never another's
    /// (the server checks whose each session is).
    OwnAccount,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::ViewTable,
        Permission::Block,
        Permission::ManageUsers,
        Permission::ViewAudit,
        Permission::Tune,
        Permission::OwnAccount,
    ];

    /// THE permission table.
    pub fn minimum_role(self) -> Role {
        match self {
            Self::ViewTable | Self::OwnAccount => Role::Viewer,
            Self::Block => Role::Operator,
            Self::ManageUsers | Self::ViewAudit | Self::Tune => Role::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_viewer_operator_admin() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn only_admins_manage_users_and_everyone_views_the_table() {
        let user = |role| CurrentUser {
            id: 1,
            username: "u".into(),
            role,
        };
        assert!(
            Role::ALL
                .iter()
                .all(|&r| user(r).may(Permission::ViewTable))
        );
        assert!(!user(Role::Viewer).may(Permission::ManageUsers));
        assert!(!user(Role::Operator).may(Permission::ManageUsers));
        assert!(user(Role::Admin).may(Permission::ManageUsers));
    }

    #[test]
    fn only_admins_read_the_audit_log_and_tune_the_kernel() {
        assert_eq!(Permission::ViewAudit.minimum_role(), Role::Admin);
        assert_eq!(Permission::Tune.minimum_role(), Role::Admin);
    }
}
