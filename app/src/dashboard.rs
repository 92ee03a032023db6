//! The dashboard: its page and pieces (gauge, banners, chart, counters, rates), the live feed and
//! history they show, and (here) what its first render needs in one answer: the newest sample, the
//! history and the thresholds. Afterwards the page only receives new samples over the live stream.

pub mod fill_banner;
pub mod fill_gauge;
pub mod helper_banner;
pub mod history;
pub mod history_chart;
pub mod live;
pub mod page;
pub mod stat_list;
pub mod thresholds;
pub mod trend;
pub mod trend_panel;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    dashboard::history::History, dashboard::live::LiveSample, dashboard::thresholds::Thresholds,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardSeed {
    pub sample: LiveSample,
    pub history: History,
    pub thresholds: Thresholds,
}

/// The path of [`load_dashboard`], fixed so tools can ask it too.
pub const SEED_PATH: &str = "/api/dashboard_seed";

/// The newest sample, the server's history and its thresholds, for the first render.
#[server(endpoint = "dashboard_seed")]
pub async fn load_dashboard() -> Result<DashboardSeed, ServerFnError> {
    let feed = expect_context::<crate::dashboard::live::ssr::LiveFeed>();
    let history = expect_context::<ssr::SharedHistory>();
    let thresholds = expect_context::<Thresholds>();
    Ok(DashboardSeed {
        sample: feed.latest(),
        history: history.snapshot(),
        thresholds,
    })
}

#[cfg(feature = "ssr")]
pub mod ssr {
    //! The server's copy of the history, shared by the sampler (which extends it) and the pages.

    use std::sync::{Arc, Mutex, PoisonError};

    use crate::{
        dashboard::history::{History, MinutePoint},
        dashboard::trend::Point,
    };

    #[derive(Debug, Clone, Default)]
    pub struct SharedHistory(Arc<Mutex<History>>);

    impl SharedHistory {
        pub fn new(history: History) -> Self {
            Self(Arc::new(Mutex::new(history)))
        }

        pub fn push(&self, point: Point) {
            self.lock().push(point);
        }

        pub fn snapshot(&self) -> History {
            self.lock().clone()
        }

        pub fn minutes(&self) -> Vec<MinutePoint> {
            self.lock().minutes.iter().copied().collect()
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, History> {
            // Pushing cannot leave the history half-changed in a way that matters; go on after a panic.
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }
}
