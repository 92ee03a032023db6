//! Server-side rendering in a process that starts several applications, as every test binary
//! does: a page that waits on resources streams to its end while another application is built.

#![allow(clippy::unwrap_used)]

use crate::support;

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use ctguard_app::auth::Role;
use support::{body, spawn_app};

/// Building an application generated the route list, which set leptos's process-wide flag that
/// makes every resource polled meanwhile wait forever (see `route_list` in server/src/startup.rs):
/// a page rendered by another application at that moment never ended. Pages are rendered for as
/// long as the other applications are being built, so every build overlaps renders. Without the
/// fix this test failed in 5 of 6 runs (a page stalled; the clients' read timeout ended it). Two
/// worker threads, so that builds and renders truly run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stream_to_their_end_while_other_applications_start() {
    const BUILDS: usize = 30;
    const AT_LEAST_PAGES: usize = 50;
    let app = spawn_app().await;
    let admin = app.signed_in(Role::Admin).await;
    let built = Arc::new(AtomicBool::new(false));
    let builder = tokio::spawn({
        let built = Arc::clone(&built);
        async move {
            for _ in 0..BUILDS {
                drop(spawn_app().await);
            }
            built.store(true, Ordering::SeqCst);
        }
    });
    let mut pages = 0;
    while pages < AT_LEAST_PAGES || !built.load(Ordering::SeqCst) {
        // The audit page's records and the navigation both wait on resources.
        let html = body(app.get(&admin, "/audit").await).await;
        assert!(html.contains(r#"data-testid="audit""#), "the records table");
        assert!(html.contains(r#"href="/users""#), "the admin's navigation");
        pages += 1;
    }
    builder.await.unwrap();
}
