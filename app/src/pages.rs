//! The panel's pages, one module each.

pub mod audit;
pub mod dashboard;
pub mod login;
pub mod users;
