//! Reusable view pieces.

pub mod confirm_dialog;
pub mod fill_gauge;
pub mod helper_banner;
pub mod stat_list;
