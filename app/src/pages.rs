//! The panel's pages, one module each.

pub mod account;
pub mod audit;
pub mod blocks;
pub mod dashboard;
pub mod login;
pub mod suspicious;
pub mod tuning;
pub mod users;
