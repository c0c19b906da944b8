//! `sundial import` and `sundial export`: data in and out of a running
//! server in six formats (docs/cli.md). Both speak the server's
//! `/api/import` and `/api/export` series lines; `format` turns those
//! into and out of each file format.

mod batcher;
mod export;
mod format;
mod import;
mod state;

pub(crate) use export::{ExportArgs, run as export};
pub(crate) use import::{ImportArgs, run as import};

use serde::Deserializer;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use sundial_model::FieldValue;

/// The file formats, as `--format` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// `/api/put` bodies: JSON arrays of `{metric, timestamp, value, tags}`
    /// (fields other than `value` as Alibaba's `fields` objects).
    OpentsdbJson,
    /// `put <metric> <timestamp> <value> <tagk=tagv>...` lines.
    Telnet,
    /// `metric,tags,field,timestamp,value` with a header row.
    Csv,
    /// `/v1/datapoint` bodies: `{"datapoints": [...]}`.
    BaiduJson,
    /// InfluxDB line protocol (`--precision`, nanoseconds by default).
    InfluxLine,
    /// VictoriaMetrics' `/api/v1/export` JSON lines.
    VmJsonl,
}

/// Connection to a running server: its URL and the key to sign with.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerArgs {
    /// The server, e.g. http://127.0.0.1:4242.
    #[arg(long, env = "SUNDIAL_URL", default_value = "http://127.0.0.1:4242")]
    url: String,
    /// Database [default: the server's default].
    #[arg(long)]
    database: Option<String>,
    /// Access key id, when the server has keys configured.
    #[arg(long, env = "SUNDIAL_ACCESS_KEY")]
    access_key: Option<String>,
    /// Its secret.
    #[arg(long, env = "SUNDIAL_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

impl ServerArgs {
    /// A request to `path?query` with the database and HTTP Basic
    /// credentials (the OpenTSDB routes' scheme) set.
    fn request(&self, method: &str, path: &str, query: &[(&str, &str)]) -> ureq::Request {
        let base = self.url.trim_end_matches('/');
        let mut request = ureq::request(method, &format!("{base}{path}"));
        if let Some(db) = &self.database {
            request = request.query("database", db);
        }
        for (k, v) in query {
            request = request.query(k, v);
        }
        if let (Some(id), Some(secret)) = (&self.access_key, &self.secret_key) {
            let basic = crate::cli_query::basic_authorization(id, secret);
            request = request.set("Authorization", &basic);
        }
        request
    }
}

/// The server's error as an error: its status and body.
fn http_error(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, response) => anyhow::anyhow!(
            "the server answered {code}: {}",
            response.into_string().unwrap_or_default()
        ),
        other => other.into(),
    }
}

/// A value with its kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Long(i64),
    Double(f64),
    Bool(bool),
    Text(String),
}

impl Val {
    /// Text as a number when it reads as one (integers stay integers),
    /// `true`/`false` as booleans, anything else as text.
    fn from_text(s: &str) -> Self {
        if let Ok(i) = s.parse::<i64>() {
            return Self::Long(i);
        }
        if s.bytes().any(|b| b.is_ascii_digit())
            && let Ok(f) = s.parse::<f64>()
            && f.is_finite()
        {
            return Self::Double(f);
        }
        match s {
            "true" => Self::Bool(true),
            "false" => Self::Bool(false),
            _ => Self::Text(s.to_owned()),
        }
    }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Long(v) => s.serialize_i64(*v),
            Self::Double(v) => s.serialize_f64(*v),
            Self::Bool(v) => s.serialize_bool(*v),
            Self::Text(v) => s.serialize_str(v),
        }
    }
}

impl<'de> Deserialize<'de> for Val {
    /// As the server's `/api/import` reads a value.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match sundial_opentsdb::LineValue::deserialize(d)?.0 {
            FieldValue::Long(v) => Self::Long(v),
            FieldValue::Double(v) => Self::Double(v),
            FieldValue::Bool(v) => Self::Bool(v),
            FieldValue::String(v) => Self::Text(v),
            // JSON has no bytes; the server's reader never makes them.
            FieldValue::Bytes(v) => Self::Text(String::from_utf8_lossy(&v).into_owned()),
        })
    }
}

/// One series' slice as `/api/import` and `/api/export` carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Line {
    pub(crate) metric: String,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
    #[serde(default = "default_field")]
    pub(crate) field: String,
    pub(crate) timestamps: Vec<i64>,
    pub(crate) values: Vec<Val>,
}

pub(crate) const DEFAULT_FIELD: &str = "value";

fn default_field() -> String {
    DEFAULT_FIELD.to_owned()
}

#[cfg(test)]
mod tests;
