//! The operators' area: what fills the table and what to do about it. The Suspicious sources page
//! (suspects, victims, creators, traces), the Blocks page and the block form, the Tuning page, and
//! the server functions behind them.

pub mod block_form;
pub mod block_scope;
pub mod blocks;
pub mod clock;
pub mod creators;
pub mod operations;
pub mod suspicion;
pub mod suspicious;
pub mod trace;
pub mod trace_panel;
pub mod tuning;
pub mod walk_wait;
