//! One handler per request, chosen by one exhaustive `match`: adding a request variant does not
//! compile until it is handled here.

use ctguard_protocol::{PROTOCOL_VERSION, Request, Response};

use crate::kernel::ProcFs;

#[derive(Debug)]
pub struct Handler {
    procfs: ProcFs,
    netns: Option<String>,
}

impl Handler {
    pub fn new(procfs: ProcFs, netns: Option<String>) -> Self {
        Self { procfs, netns }
    }

    pub fn welcome(&self) -> Response {
        Response::Welcome {
            protocol_version: PROTOCOL_VERSION,
            helper_version: env!("CARGO_PKG_VERSION").to_owned(),
            netns: self.netns.clone(),
        }
    }

    pub async fn handle(&self, request: Request) -> Response {
        match request {
            // A repeated hello is harmless: answer it as the first one was answered.
            Request::Hello { .. } => self.welcome(),
            Request::Status {} => self.status().await,
            Request::KernelLog {} => kernel_log().await,
        }
    }

    async fn status(&self) -> Response {
        let procfs = self.procfs.clone();
        // procfs reads are blocking file I/O; keep them off the async workers.
        let reading = tokio::task::spawn_blocking(move || procfs.status()).await;
        match reading {
            Ok(Ok(status)) => Response::Status { status },
            Ok(Err(error)) => Response::Error {
                error: error.into(),
            },
            Err(join_error) => Response::Error {
                error: ctguard_protocol::HelperError::KernelRead {
                    path: "/proc".into(),
                    detail: format!("reader task failed: {join_error}"),
                },
            },
        }
    }
}

/// Counts conntrack's `table full` messages in the kernel log of the last minutes.
async fn kernel_log() -> Response {
    let reading = tokio::task::spawn_blocking(|| {
        crate::kernel::kmsg::read_summary(
            std::path::Path::new(crate::kernel::kmsg::DEV_KMSG),
            crate::kernel::kmsg::WINDOW,
        )
    })
    .await;
    match reading {
        Ok(Ok(log)) => Response::KernelLog { log },
        Ok(Err(error)) => Response::Error {
            error: error.into(),
        },
        Err(join_error) => Response::Error {
            error: ctguard_protocol::HelperError::KernelRead {
                path: crate::kernel::kmsg::DEV_KMSG.into(),
                detail: format!("reader task failed: {join_error}"),
            },
        },
    }
}
