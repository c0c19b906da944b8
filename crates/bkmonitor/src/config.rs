//! BlueKing metadata settings (spec 10), the `[bkmonitor]` section of the
//! configuration file.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// App code → accepted secrets. Empty: open mode (any non-empty code
    /// and secret pass, no user check), so the seed's placeholders work.
    pub esb_apps: BTreeMap<String, Vec<String>>,
    /// Apps allowed to name the user with `bk_username`.
    pub esb_login_exempt_apps: Vec<String>,
    /// Accepted `bk_token` values → user names.
    pub esb_bk_tokens: BTreeMap<String, String>,
    /// Require `metadata_create_data_id` before a group create (BlueKing's
    /// behaviour) instead of registering the data id on the fly.
    pub strict_data_id: bool,
    /// How long a discovered metric stays listed without new data.
    pub metric_expire_seconds: u64,
    /// How far in the future a `/v2/push/` timestamp may be.
    pub max_future_time_offset_seconds: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            esb_apps: BTreeMap::new(),
            esb_login_exempt_apps: Vec::new(),
            esb_bk_tokens: BTreeMap::new(),
            strict_data_id: false,
            metric_expire_seconds: 30 * 86_400,
            max_future_time_offset_seconds: 3600,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        for (code, secrets) in &self.esb_apps {
            if code.is_empty() || secrets.is_empty() || secrets.iter().any(String::is_empty) {
                return Err(format!(
                    "bkmonitor.esb_apps: app {code:?} needs a non-empty code and non-empty secrets"
                ));
            }
        }
        if self.metric_expire_seconds == 0 {
            return Err("bkmonitor.metric_expire_seconds must be positive".into());
        }
        Ok(())
    }
}
