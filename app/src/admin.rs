//! The admins' area: the Users page (accounts, roles, sessions) and the Audit page (the audit log
//! and the helper journal's chain).

pub mod audit;
pub mod users;
