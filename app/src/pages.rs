//! The panel's pages, one module each.

pub mod dashboard;
