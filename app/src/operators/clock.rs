//! The wall clock for countdowns: the server's when it renders, the browser's after hydration,
//! ticking once a second while a component that asked for it lives.

use leptos::prelude::*;

/// Seconds since the Unix epoch, wherever the code runs.
pub fn now_unix() -> u64 {
    #[cfg(feature = "hydrate")]
    {
        // `SystemTime::now` panics on wasm32-unknown-unknown; the browser's clock is JavaScript's.
        (js_sys::Date::now() / 1000.0) as u64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A signal holding [`now_unix`], advanced every second in the browser (during server-side
/// rendering it is the render time and does not tick).
pub fn ticking_now() -> ReadSignal<u64> {
    let (now, set_now) = signal(now_unix());
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || set_now.set(now_unix()),
            std::time::Duration::from_secs(1),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    now
}
