//! OpenTSDB adapter settings (spec section 18).

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Tag keys per series (seed: 16 on the smaller instance sizes).
    pub max_tags: usize,
    pub max_metric_bytes: usize,
    pub max_tagk_bytes: usize,
    pub max_tagv_bytes: usize,
    /// Request body limit, counted after decompression.
    pub max_body_bytes: usize,
    pub telnet_max_line_bytes: usize,
    /// Write telnet `put` errors back to the client.
    pub telnet_return_errors: bool,
    /// The OpenTSDB version `/api/version` reports.
    pub version_string: String,
    /// IANA zone of date strings and calendar downsampling when a query
    /// names none (spec 4.5).
    pub timezone: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_tags: 16,
            max_metric_bytes: 255,
            max_tagk_bytes: 255,
            max_tagv_bytes: 255,
            max_body_bytes: 64 << 20,
            telnet_max_line_bytes: 8192,
            telnet_return_errors: true,
            version_string: "2.4.0".into(),
            timezone: "UTC".into(),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.max_tags) {
            return Err("opentsdb.max_tags must be between 1 and 64".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("opentsdb.max_body_bytes must be at least 1024".into());
        }
        if self.telnet_max_line_bytes < 64 {
            return Err("opentsdb.telnet_max_line_bytes must be at least 64".into());
        }
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return Err(format!(
                "opentsdb.timezone: unknown time zone {:?}",
                self.timezone
            ));
        }
        for (name, v) in [
            ("max_metric_bytes", self.max_metric_bytes),
            ("max_tagk_bytes", self.max_tagk_bytes),
            ("max_tagv_bytes", self.max_tagv_bytes),
        ] {
            if v == 0 {
                return Err(format!("opentsdb.{name} must be positive"));
            }
        }
        Ok(())
    }
}
