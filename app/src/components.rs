//! Reusable view pieces.

pub mod block_form;
pub mod confirm_dialog;
pub mod fill_banner;
pub mod fill_gauge;
pub mod helper_banner;
pub mod history_chart;
pub mod operation_flow;
pub mod stat_list;
pub mod trace_panel;
pub mod trend_panel;
