//! SQL over stored series (Baidu TSDB `/v1/row`, spec baidu-tsdb 10) on
//! Apache DataFusion: each metric of a database is a table, scanned from
//! storage with time-range and tag push-down, within the same row, point,
//! memory and time limits as the JSON query.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod aggregate;
mod functions;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod guard;
mod output;
mod remote;
mod rewrite;
mod scan;
mod table;

pub use functions::WidthParser;
pub use output::{Cell, Output, Row, Value};

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use remote::Store;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use sundial_api::reads::RemoteReads;
use sundial_model::ErrorClass;
use sundial_storage::Db;

/// Bounds of one statement.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Result rows (spec: 1 000 000).
    pub max_rows: usize,
    /// Stored points the scans may read.
    pub max_scan_points: usize,
    pub timeout: Duration,
    /// Memory for joins, sorts and aggregations.
    pub memory_bytes: usize,
    /// Reads `time_bucket` widths (`'10 seconds'`).
    pub bucket_width: WidthParser,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SqlError {
    /// Parse, planning or evaluation error, or a limit: the client's.
    #[error("{0}")]
    Invalid(String),
    #[error("the statement ran longer than {0:?}")]
    Timeout(Duration),
    /// Storage or engine failure; not shown to clients.
    #[error("{0}")]
    Internal(String),
    /// Another node of a cluster could not answer its part of a scan (a
    /// shard moving: busy, retry), or refused it.
    #[error("{message}")]
    Remote { message: String, class: ErrorClass },
}

impl SqlError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Invalid(_) => ErrorClass::InvalidInput,
            Self::Timeout(_) => ErrorClass::Timeout,
            Self::Internal(_) => ErrorClass::Internal,
            Self::Remote { class, .. } => *class,
        }
    }
}

/// What a scan past the deadline reports (never a client's text).
const DEADLINE: &str = "\u{1}sundial: statement deadline";

/// Points read and the deadline of one statement, shared by its scans.
#[derive(Debug)]
pub(crate) struct Budget {
    points: AtomicUsize,
    max_points: usize,
    deadline: Instant,
    /// The statement may see rows in storage order: scans then go series
    /// by series, over several partitions.
    pub(crate) ordered: bool,
    pub(crate) partitions: usize,
}

impl Budget {
    pub(crate) fn take(&self, n: usize) -> Result<(), DataFusionError> {
        let total = self
            .points
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        if total > self.max_points {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "the statement reads more than {} stored points; narrow the time range or the tags",
                self.max_points
            )));
        }
        self.check_time()
    }

    pub(crate) fn check_time(&self) -> Result<(), DataFusionError> {
        if Instant::now() > self.deadline {
            return Err(DataFusionError::ResourcesExhausted(DEADLINE.into()));
        }
        Ok(())
    }

    /// What is left of this budget, for a request to other nodes.
    pub(crate) fn for_remote(&self) -> sundial_query::Budget {
        let used = self.points.load(Ordering::Relaxed);
        sundial_query::Budget::new(
            self.deadline.saturating_duration_since(Instant::now()),
            self.max_points.saturating_sub(used),
        )
    }
}

/// Runs one SELECT statement over the metrics of `db`.
pub async fn run(db: &Db, sql: &str, opts: Options) -> Result<Output, SqlError> {
    run_with(Store::Local(db.clone()), sql, opts, true).await
}

/// Runs one SELECT statement over the metrics of `database` on the nodes
/// `reads` asks (a cluster's querier): what [`run`] answers over one
/// database holding the same series.
pub async fn run_remote(
    reads: Arc<dyn RemoteReads>,
    database: &str,
    sql: &str,
    opts: Options,
) -> Result<Output, SqlError> {
    let remote = remote::Remote {
        reads,
        database: database.to_owned(),
    };
    run_with(Store::Remote(Arc::new(remote)), sql, opts, true).await
}

/// [`run`], with or without aggregates folded in the scan (tests compare
/// both).
async fn run_with(
    store: Store,
    sql: &str,
    opts: Options,
    aggregate_in_scan: bool,
) -> Result<Output, SqlError> {
    // Off the async workers: the SQL parser backtracks, and the fuzzer
    // found a 437-byte statement that keeps it busy for seconds.
    let text = sql.to_owned();
    let prepared = tokio::task::spawn_blocking(move || rewrite::prepare(&text))
        .await
        .map_err(|e| SqlError::Internal(e.to_string()))??;
    let deadline = Instant::now() + opts.timeout;
    let partitions = sundial_query::cores();
    let budget = Arc::new(Budget {
        points: AtomicUsize::new(0),
        max_points: opts.max_scan_points,
        deadline,
        ordered: prepared.ordered,
        partitions,
    });
    let state = session(store, budget.clone(), &opts, aggregate_in_scan)?;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(opts.memory_bytes, 1.0)
        .build_arc()
        .map_err(internal)?;
    let work = async {
        let plan = plan(&state, prepared.statement).await?;
        let columns: Vec<String> = plan
            .schema()
            .iter()
            .map(|(q, f)| match q {
                Some(q) if prepared.qualify => format!("{}.{}", q.table(), f.name()),
                _ => f.name().clone(),
            })
            .collect();
        let physical = state.create_physical_plan(&plan).await.map_err(classify)?;
        let task = TaskContext::from(&state).with_runtime(runtime);
        let mut stream = execute_stream(physical, Arc::new(task)).map_err(classify)?;
        let mut out = Output::new(columns);
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(classify)?;
            if out.len() + batch.num_rows() > opts.max_rows {
                return Err(SqlError::Invalid(format!(
                    "the result has more than {} rows; add a LIMIT or narrow the query",
                    opts.max_rows
                )));
            }
            out.push(&batch);
        }
        out.scanned_points = budget.points.load(Ordering::Relaxed);
        Ok(out)
    };
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(result) => result.map_err(|e| match e {
            SqlError::Timeout(_) => SqlError::Timeout(opts.timeout),
            other => other,
        }),
        Err(_) => Err(SqlError::Timeout(opts.timeout)),
    }
}

/// The DataFusion state a statement is planned in: the metrics of
/// `store` as tables, scans within `budget`, aggregates folded in the scan
/// when `aggregate_in_scan`. Its memory bound is the task's, at execution.
fn session(
    store: Store,
    budget: Arc<Budget>,
    opts: &Options,
    aggregate_in_scan: bool,
) -> Result<SessionState, SqlError> {
    let mut state = template(opts.bucket_width, aggregate_in_scan)?;
    // One partition keeps the scan's row order through projections and
    // filters, which a plain SELECT needs.
    let partitions = if budget.ordered { 1 } else { budget.partitions };
    state.config_mut().options_mut().execution.target_partitions = partitions.max(1);
    // A catalog of its own: the template's is shared by every statement.
    let catalog = MemoryCatalogProvider::new();
    catalog
        .register_schema("public", Arc::new(table::Metrics { store, budget }))
        .map_err(internal)?;
    let catalogs = MemoryCatalogProviderList::new();
    let name = state.config().options().catalog.default_catalog.clone();
    catalogs.register_catalog(name, Arc::new(catalog));
    state.register_catalog_list(Arc::new(catalogs));
    // `now()` is the statement's start, not the template's.
    state.mark_start_execution();
    Ok(state)
}

/// Settings of every statement's session.
fn base_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_information_schema(false);
    // Field and tag names are case-sensitive (spec 10.2).
    config.options_mut().sql_parser.enable_ident_normalization = false;
    // One pass of the logical optimizer: a second, run whenever the first
    // changed anything, took about 8% of a grouped statement's time, and
    // every shape the fold rule takes is folded in the first (see
    // aggregate/tests.rs).
    config.options_mut().optimizer.max_passes = 1;
    config
}

/// What a statement's state starts from, made once per process for each
/// width parser (and with or without the fold rule): DataFusion's
/// functions behind the guard, and Baidu's own. A state built per
/// statement re-registered some two hundred functions, a tenth of a small
/// statement's time; a clone copies the maps as they are.
fn template(width: WidthParser, aggregate_in_scan: bool) -> Result<SessionState, SqlError> {
    type Templates = Vec<((usize, bool), Arc<SessionState>)>;
    static TEMPLATES: Mutex<Templates> = Mutex::new(Vec::new());
    // The parser by address: one function seen at two addresses only
    // costs a second template, and callers pass one or two functions.
    let key = (width as usize, aggregate_in_scan);
    let cached = TEMPLATES.lock().ok().and_then(|templates| {
        templates
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, state)| state.clone())
    });
    if let Some(state) = cached {
        return Ok(SessionState::clone(&state));
    }
    let ctx = SessionContext::new_with_config(base_config());
    guard::restrict(&ctx).map_err(internal)?;
    functions::register_fixed(&ctx);
    functions::register_time_bucket(&ctx, width);
    if aggregate_in_scan {
        ctx.add_analyzer_rule(Arc::new(aggregate::AggregatePushdown));
        ctx.add_optimizer_rule(Arc::new(aggregate::AggregatePushdown));
    }
    let state = Arc::new(ctx.state());
    // Checked again: another statement may have made it meanwhile.
    if let Ok(mut templates) = TEMPLATES.lock()
        && templates.len() < 8
        && templates.iter().all(|(k, _)| *k != key)
    {
        templates.push((key, state.clone()));
    }
    Ok(SessionState::clone(&state))
}

/// The logical plan of a prepared statement.
async fn plan(
    state: &SessionState,
    statement: datafusion::sql::sqlparser::ast::Statement,
) -> Result<datafusion::logical_expr::LogicalPlan, SqlError> {
    let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement));
    state.statement_to_plan(statement).await.map_err(classify)
}

fn internal(e: DataFusionError) -> SqlError {
    SqlError::Internal(e.to_string())
}

/// Client mistakes and limits are `Invalid`; engine and storage failures
/// are `Internal`.
fn classify(e: DataFusionError) -> SqlError {
    // Errors of other partitions arrive wrapped (`Shared`, `Context`).
    match e.find_root() {
        DataFusionError::IoError(_) | DataFusionError::Internal(_) => {
            SqlError::Internal(e.to_string())
        }
        DataFusionError::External(inner) => {
            if inner.downcast_ref::<sundial_storage::Error>().is_some() {
                return SqlError::Internal(inner.to_string());
            }
            match inner
                .downcast_ref::<sundial_query::Error>()
                .map(|e| (e, e.class()))
            {
                Some((_, ErrorClass::Internal)) => SqlError::Internal(inner.to_string()),
                Some((_, ErrorClass::Timeout)) => SqlError::Timeout(Duration::ZERO),
                Some((e, class @ ErrorClass::Busy)) => SqlError::Remote {
                    message: e.to_string(),
                    class,
                },
                _ => SqlError::Invalid(inner.to_string()),
            }
        }
        DataFusionError::ResourcesExhausted(m) if m == DEADLINE => {
            SqlError::Timeout(Duration::ZERO)
        }
        DataFusionError::ResourcesExhausted(m) => SqlError::Invalid(m.clone()),
        root => SqlError::Invalid(root.strip_backtrace()),
    }
}

/// Rows as text to compare, doubles to 9 significant digits (two plans
/// may add the same doubles in another order).
#[cfg(test)]
pub(crate) fn row_text(rows: &[Vec<Cell>]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Cell::Double(d) => format!("{d:.9e}"),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}
