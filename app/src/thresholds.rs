//! The fill thresholds of the gauge and the banner: configured on the server, sent to the page.

use serde::{Deserialize, Serialize};

/// Fill percentages at which the dashboard warns and alarms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub warning_percent: f64,
    pub critical_percent: f64,
}

impl Default for Thresholds {
    /// 80 % and 95 %: the alarms people already know.
    fn default() -> Self {
        Self {
            warning_percent: 80.0,
            critical_percent: 95.0,
        }
    }
}

/// How worrying a fill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Normal,
    Warning,
    Critical,
}

impl Severity {
    /// The CSS class and test value.
    pub fn class(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

impl Thresholds {
    pub fn severity(&self, percent: f64) -> Severity {
        if percent >= self.critical_percent {
            Severity::Critical
        } else if percent >= self.warning_percent {
            Severity::Warning
        } else {
            Severity::Normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_the_default_thresholds() {
        let thresholds = Thresholds::default();
        assert_eq!(thresholds.severity(0.0), Severity::Normal);
        assert_eq!(thresholds.severity(79.9), Severity::Normal);
        assert_eq!(thresholds.severity(80.0), Severity::Warning);
        assert_eq!(thresholds.severity(94.99), Severity::Warning);
        assert_eq!(thresholds.severity(95.0), Severity::Critical);
        assert_eq!(thresholds.severity(100.0), Severity::Critical);
    }

    #[test]
    fn configured_thresholds_apply() {
        let thresholds = Thresholds {
            warning_percent: 0.05,
            critical_percent: 50.0,
        };
        assert_eq!(thresholds.severity(0.04), Severity::Normal);
        assert_eq!(thresholds.severity(0.1), Severity::Warning);
    }
}
