//! `[baidu]` settings.

use super::auth::Credential;
use serde::Deserialize;

/// Settings of the `/v1` API; `Default` gives the documented defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Access keys in the older form (`[auth] credentials` is the one
    /// store; these join it with read and write on their databases).
    pub credentials: Vec<Credential>,
    /// Kept so older files load; `false` is refused: once any key is
    /// configured every API requires one.
    pub require_auth: bool,
    /// Time zone of calendar sampling units (`1 dc`, `1 nc`), `+HH:MM`.
    pub calendar_utc_offset: String,
    /// Region in database endpoints (`{name}.tsdb.iot.{region}.baidubce.com`).
    pub region: String,
    /// Data points per write request.
    pub max_points_per_write: usize,
    /// Longest String value, in characters.
    pub max_string_chars: usize,
    /// Largest Bytes value after base64 decoding.
    pub max_bytes_value: usize,
    /// Largest request body after decompression.
    pub max_body_bytes: usize,
    /// Older name of `limits.query_timeout_secs`; wins when set.
    pub query_timeout_secs: Option<u64>,
    /// Older name of `limits.max_query_points` (raw rows, fill, value
    /// filters, or buckets for the streaming Count/Sum/Min/Max/Avg); wins
    /// when set.
    pub max_query_points: Option<usize>,
    /// Groups one query may make.
    pub max_query_groups: usize,
    /// Memory one SQL statement may use for joins, sorts and aggregations.
    pub sql_memory_bytes: usize,
    /// 0: the real clock. Otherwise a fixed "now" in ms for signature expiry,
    /// default timestamps and relative times (tests; spec 5.4).
    pub test_clock_ms: i64,
    /// Presampling rules (`[[baidu.presampling]]`, spec 12), applied to
    /// their databases at start; `/admin/presampling` cannot remove them.
    pub presampling: Vec<ConfiguredRule>,
}

/// A presampling rule of the configuration: `database` (default
/// `default`) and the rule's members (`id`, `metric`, `tags`,
/// `aggregators`, `startTime`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConfiguredRule {
    #[serde(default)]
    pub database: Option<String>,
    #[serde(flatten)]
    pub rule: serde_json::Map<String, serde_json::Value>,
}

impl ConfiguredRule {
    /// The rule's database.
    pub fn database(&self) -> &str {
        self.database
            .as_deref()
            .unwrap_or(sundial_storage::DEFAULT_DATABASE)
    }

    /// The rule, checked.
    pub fn rule(&self) -> Result<sundial_storage::PresamplingRule, String> {
        super::presampling::parse_rule(&serde_json::Value::Object(self.rule.clone()))
            .map_err(|e| format!("baidu.presampling: {}", e.message))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            require_auth: true,
            calendar_utc_offset: "+08:00".into(),
            region: "gz".into(),
            max_points_per_write: 10_000,
            max_string_chars: 256,
            max_bytes_value: 200,
            max_body_bytes: 32 << 20,
            query_timeout_secs: None,
            max_query_points: None,
            max_query_groups: 100_000,
            sql_memory_bytes: 512 << 20,
            test_clock_ms: 0,
            presampling: Vec::new(),
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        self.utc_offset_ms()?;
        for (i, r) in self.presampling.iter().enumerate() {
            let rule = r.rule()?;
            let twice = self.presampling[..i]
                .iter()
                .any(|o| o.database() == r.database() && o.rule().is_ok_and(|o| o.id == rule.id));
            if twice {
                return Err(format!(
                    "baidu.presampling: rule {} twice for database {}",
                    rule.id,
                    r.database()
                ));
            }
        }
        if !self.require_auth {
            return Err(
                "baidu.require_auth = false is no longer supported: once any access key \
                        is configured every API requires one (remove the keys to run open)"
                    .into(),
            );
        }
        if self.query_timeout_secs == Some(0)
            || self.max_query_points == Some(0)
            || self.max_points_per_write == 0
        {
            return Err("baidu: query_timeout_secs, max_query_points and max_points_per_write must be positive".into());
        }
        Ok(())
    }

    /// `calendar_utc_offset` in ms.
    pub(crate) fn utc_offset_ms(&self) -> Result<i64, String> {
        let text = self.calendar_utc_offset.trim();
        let bad = || format!("baidu.calendar_utc_offset {text:?} is not like +08:00");
        let (sign, rest) = match text.split_at_checked(1) {
            Some(("+", r)) => (1, r),
            Some(("-", r)) => (-1, r),
            _ => return Err(bad()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        if h > 14 || m > 59 {
            return Err(bad());
        }
        Ok(sign * (h * 3_600_000 + m * 60_000))
    }
}
