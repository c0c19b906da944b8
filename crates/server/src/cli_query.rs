//! `sundial query`: one statement against a running server in any of its
//! three query languages, printed as a table, CSV or the server's JSON.
//! OpenTSDB requests carry HTTP Basic credentials, Baidu and SQL requests
//! a `bce-auth-v1` signature, as each API's own clients send them.

use anyhow::{Context, bail};
use serde_json::Value;
use std::io::Read;

#[derive(Debug, clap::Args)]
pub(crate) struct QueryArgs {
    /// The server, e.g. http://127.0.0.1:4242.
    #[arg(long, env = "SUNDIAL_URL", default_value = "http://127.0.0.1:4242")]
    url: String,
    /// Query language: opentsdb (a /api/query query string such as
    /// `start=1h-ago&m=sum:cpu{host=a}`, or a JSON body), baidu (a /v1
    /// JSON query) or sql.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The statement; `-` reads it from standard input.
    statement: String,
    /// Database [default: the server's default].
    #[arg(long)]
    database: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Access key id, when the server has keys configured.
    #[arg(long, env = "SUNDIAL_ACCESS_KEY")]
    access_key: Option<String>,
    /// Its secret.
    #[arg(long, env = "SUNDIAL_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Lang {
    Opentsdb,
    Baidu,
    Sql,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// Rows with named columns, whatever the language answered.
#[derive(Debug, Default, PartialEq)]
struct Table {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

pub(crate) fn run(args: QueryArgs) -> anyhow::Result<()> {
    let statement = if args.statement == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        args.statement.clone()
    };
    let answer = ask(&args, statement.trim())?;
    let json: Value = serde_json::from_str(&answer)
        .with_context(|| format!("the server's answer is not JSON: {answer}"))?;
    let out = match args.format {
        Format::Json => format!("{answer}\n"),
        Format::Table => render_table(&to_table(args.lang, &json)?),
        Format::Csv => render_csv(&to_table(args.lang, &json)?)?,
    };
    print!("{out}");
    Ok(())
}

/// Sends the statement; the server's body on success, its error as the
/// error otherwise.
fn ask(args: &QueryArgs, statement: &str) -> anyhow::Result<String> {
    let base = args.url.trim_end_matches('/');
    let database = args
        .database
        .as_deref()
        .map(|d| format!("database={}", encode(d)));
    let with_db = |query: Option<String>| -> Option<String> {
        match (query, &database) {
            (Some(q), Some(d)) => Some(format!("{q}&{d}")),
            (None, Some(d)) => Some(d.clone()),
            (q, None) => q,
        }
    };
    let (method, path, query, body) = match args.lang {
        Lang::Opentsdb if statement.starts_with('{') => {
            ("POST", "/api/query", with_db(None), Some(statement))
        }
        Lang::Opentsdb => (
            "GET",
            "/api/query",
            with_db(Some(statement.to_owned())),
            None,
        ),
        Lang::Baidu => (
            "PUT",
            "/v1/datapoint",
            with_db(Some("query".into())),
            Some(statement),
        ),
        Lang::Sql => {
            let sql = format!("sql={}", encode(statement));
            ("GET", "/v1/row", with_db(Some(sql)), None)
        }
    };
    let url = match &query {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    };
    let mut request = ureq::request(method, &url).set("Content-Type", "application/json");
    if let Some(authorization) = authorization(args, method, path, query.as_deref(), base)? {
        request = request.set("Authorization", &authorization);
    }
    let response = match body {
        Some(b) => request.send_string(b),
        None => request.call(),
    };
    match response {
        Ok(r) => Ok(r.into_string()?),
        Err(ureq::Error::Status(code, r)) => {
            bail!(
                "the server answered {code}: {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// Basic for OpenTSDB, `bce-auth-v1` (signing the host) for `/v1`.
fn authorization(
    args: &QueryArgs,
    method: &str,
    path: &str,
    query: Option<&str>,
    base: &str,
) -> anyhow::Result<Option<String>> {
    let (Some(id), Some(secret)) = (&args.access_key, &args.secret_key) else {
        return Ok(None);
    };
    if let Lang::Opentsdb = args.lang {
        return Ok(Some(basic_authorization(id, secret)));
    }
    let host = url::Url::parse(base)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .with_context(|| format!("no host in --url {base}"))?;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Ok(Some(sundial_baidu::authorization(
        method, path, query, &host, id, secret, &now, 1800,
    )))
}

/// HTTP Basic credentials, what the OpenTSDB and admin routes take (also
/// for the import and export commands).
pub(crate) fn basic_authorization(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {pair}")
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// One row per point (OpenTSDB, Baidu) or per result row (SQL).
fn to_table(lang: Lang, json: &Value) -> anyhow::Result<Table> {
    match lang {
        Lang::Opentsdb => opentsdb_table(json),
        Lang::Baidu => baidu_table(json),
        Lang::Sql => sql_table(json),
    }
}

fn opentsdb_table(json: &Value) -> anyhow::Result<Table> {
    let mut table = Table {
        columns: ["metric", "tags", "timestamp", "value"]
            .map(String::from)
            .to_vec(),
        rows: Vec::new(),
    };
    for series in json.as_array().context("an OpenTSDB answer is a list")? {
        let metric = series["metric"].clone();
        let tags = Value::String(tag_text(&series["tags"]));
        let points: Vec<(Value, Value)> = match &series["dps"] {
            Value::Object(dps) => dps
                .iter()
                .map(|(t, v)| (t.parse::<i64>().map_or(Value::Null, Value::from), v.clone()))
                .collect(),
            Value::Array(dps) => dps.iter().map(|p| (p[0].clone(), p[1].clone())).collect(),
            _ => Vec::new(),
        };
        for (t, v) in points {
            table.rows.push(vec![metric.clone(), tags.clone(), t, v]);
        }
    }
    Ok(table)
}

fn baidu_table(json: &Value) -> anyhow::Result<Table> {
    let results = json["results"]
        .as_array()
        .context("a Baidu answer has a results list")?;
    let mut table = Table::default();
    for result in results {
        let fields: Vec<String> = match (&result["field"], &result["fields"]) {
            (Value::String(f), _) => vec![f.clone()],
            (_, Value::Array(fs)) => fs
                .iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect(),
            _ => vec!["value".into()],
        };
        let columns: Vec<String> = ["metric", "group", "timestamp"]
            .map(String::from)
            .into_iter()
            .chain(fields)
            .collect();
        if table.columns.is_empty() {
            table.columns = columns;
        } else if table.columns != columns {
            bail!("the results have different columns: print them with --format json");
        }
        for group in result["groups"].as_array().into_iter().flatten() {
            let infos: Vec<String> = group["groupInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| tag_text(&i["tags"]))
                .collect();
            let label = Value::String(infos.join(";"));
            for row in group["values"].as_array().into_iter().flatten() {
                let mut out = vec![result["metric"].clone(), label.clone()];
                out.extend(row.as_array().into_iter().flatten().cloned());
                table.rows.push(out);
            }
        }
    }
    Ok(table)
}

fn sql_table(json: &Value) -> anyhow::Result<Table> {
    let columns = json["columns"]
        .as_array()
        .context("an SQL answer has columns")?
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    let rows = json["rows"]
        .as_array()
        .context("an SQL answer has rows")?
        .iter()
        .map(|r| r.as_array().cloned().unwrap_or_default())
        .collect();
    Ok(Table { columns, rows })
}

/// `k=v,k2=v2` in key order.
fn tag_text(tags: &Value) -> String {
    let mut pairs: Vec<String> = tags
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// A cell as text: strings bare, null empty, other values as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn render_table(table: &Table) -> String {
    let mut out = comfy_table::Table::new();
    out.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    out.set_header(&table.columns);
    for row in &table.rows {
        out.add_row(row.iter().map(cell));
    }
    format!("{out}\n({} rows)\n", table.rows.len())
}

fn render_csv(table: &Table) -> anyhow::Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&table.columns)?;
    for row in &table.rows {
        writer.write_record(row.iter().map(cell))?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_become_rows() -> anyhow::Result<()> {
        let tsdb =
            json!([{"metric": "m", "tags": {"b": "2", "a": "1"}, "dps": {"10": 1.5, "20": 2}}]);
        let t = opentsdb_table(&tsdb)?;
        assert_eq!(
            t.rows,
            vec![
                vec![json!("m"), json!("a=1,b=2"), json!(10), json!(1.5)],
                vec![json!("m"), json!("a=1,b=2"), json!(20), json!(2)],
            ]
        );
        let baidu = json!({"results": [{"metric": "cpu", "field": "value", "groups": [
            {"groupInfos": [{"name": "Tag", "tags": {"rack": "r1"}}], "values": [[1000, 6]]}]}]});
        let t = baidu_table(&baidu)?;
        assert_eq!(t.columns, ["metric", "group", "timestamp", "value"]);
        assert_eq!(
            t.rows,
            vec![vec![json!("cpu"), json!("rack=r1"), json!(1000), json!(6)]]
        );
        let sql = json!({"columns": [{"name": "host"}, {"name": "n"}], "rows": [["a, b", 2]]});
        let csv = render_csv(&sql_table(&sql)?)?;
        assert_eq!(csv, "host,n\n\"a, b\",2\n");
        Ok(())
    }
}
