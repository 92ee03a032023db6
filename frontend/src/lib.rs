//! The wasm entry point: installs the panic hook and hydrates the server-rendered page.

use ctguard_app::{App, Hydrated};
use leptos::prelude::*;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Asynchronous hydration: a page that is a lazy route (app/src/lazy_pages.rs) can only hydrate
    // once its wasm chunk has loaded, which `hydrate_body` cannot wait for. The page is marked
    // hydrated (`main[data-hydrated]`) when all of it is, chunk included, not when the first
    // bundle starts: until then its buttons do nothing.
    wasm_bindgen_futures::spawn_local(async {
        let hydrated = Hydrated::default();
        let app = {
            let hydrated = hydrated.clone();
            move || {
                provide_context(hydrated);
                view! { <App/> }
            }
        };
        let mounted = leptos::mount::hydrate_from_async(document().body().expect("a body"), app);
        mounted.await.forget();
        hydrated.0.set(true);
    });
}
