//! View pieces shared by the areas: the confirmation dialog and the preview → dialog → apply flow
//! every confirmed change goes through.

pub mod confirm_dialog;
pub mod operation_flow;
