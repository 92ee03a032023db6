//! Confirmation of state changes, as the UI sees it: the server's preview of exactly what a change
//! will do, and the single-use token that alone can carry it out.

use serde::{Deserialize, Serialize};

/// What the server says a change will do, computed from the live state, with the token that
/// confirms it. Showing it and pressing Confirm is the only way to apply the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// One line naming the change, e.g. "Disable vera".
    pub title: String,
    /// What changes, each as `before → after` or a consequence ("2 sessions end").
    pub changes: Vec<String>,
    /// Things to think about before confirming.
    pub warnings: Vec<String>,
    /// Single use, bound to this session, this change and these arguments.
    pub token: String,
    /// How long the token stays valid.
    pub expires_in_secs: u32,
}
