//! `sundial`: the time-series database server.

mod admin;
mod backup;
mod check;
mod cli_query;
mod cluster;
mod config;
mod console;
mod guard;
mod linger;
mod listener;
mod metrics;
mod query_board;
mod request_log;
mod stream;
mod tls;
mod transfer;

use clap::{Parser, Subcommand};
use config::FileConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use sundial_api::shared::FileDocument;
use tracing_subscriber::EnvFilter;

/// Where a single node keeps the keys made through `/admin/keys`, in its
/// data directory.
const KEYS_FILE: &str = "access-keys.json";

// Ingest allocates and frees many small strings per point; glibc malloc took
// ~40% of server CPU under bench/ingest.sh, and mimalloc raised throughput
// from 213k to 347k points/s on this machine.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3); the Rust binding
/// names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory settings measured under bench/ingest.sh (24 h of data). Transparent
/// huge pages: every first touch of a 2 MiB page has the kernel zero all of
/// it, which took 14-22% of server CPU while the head grows (it refills
/// after every flush); with 4 KiB pages ingest went from 1.13 to 0.95 us
/// of CPU per point. Purge delay: mimalloc returns emptied memory to the OS
/// after 10 ms, and the growing head faulted it back 570 k times per run;
/// 250 ms keeps most of it across a head's growth (0.78 against 0.85 us
/// per point) for a peak RSS of 230 MiB (10 ms: 190; 10 s: 300).
fn tune_memory() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes integer arguments only
    // and changes a flag of this process; a failure leaves THP as it was.
    let thp = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if thp != 0 {
        eprintln!("warning: cannot disable transparent huge pages; ingest costs more CPU");
    }
    if cfg!(feature = "system-allocator") {
        sundial_storage::memory::on_release(|| {
            // SAFETY: takes an integer; trims the C library's arenas.
            unsafe { libc::malloc_trim(0) };
        });
        return;
    }
    // Storage threads going idle after a flush, a merge or a load hand
    // their freed pages back now, not at their next allocation.
    sundial_storage::memory::on_release(|| {
        // SAFETY: collects the calling thread's heap and purges free
        // pages process-wide, as mimalloc does on its own; takes a bool.
        unsafe { libmimalloc_sys::mi_collect(true) }
    });
    // An operator's MIMALLOC_PURGE_DELAY wins.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain option value; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 250) };
    }
}

/// Sundial: a time-series database speaking the OpenTSDB, Baidu TSDB and
/// BlueKing APIs.
#[derive(Debug, Parser)]
#[command(name = "sundial", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text or as JSON objects (one per line).
    #[arg(
        long,
        global = true,
        env = "SUNDIAL_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (HTTP and telnet on one port).
    Serve(ServeArgs),
    /// Verify every checksum and reference of a data directory; exits 1
    /// naming each damaged file.
    Check(check::CheckArgs),
    /// Copy a data directory, or a running server's snapshot, to a
    /// directory or s3://bucket/prefix: only what the destination lacks.
    Backup(backup::BackupArgs),
    /// Rebuild a data directory from a backup; exits 1 if the result does
    /// not pass `sundial check`.
    Restore(backup::RestoreArgs),
    /// Run one OpenTSDB, Baidu or SQL query against a running server and
    /// print its answer as a table, CSV or JSON.
    Query(cli_query::QueryArgs),
    /// Load a file (OpenTSDB JSON or telnet, CSV, Baidu JSON, InfluxDB
    /// line protocol, VictoriaMetrics JSON lines) into a running server.
    Import(transfer::ImportArgs),
    /// Write a running server's data out in one of the import formats.
    Export(transfer::ExportArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "SUNDIAL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./sundial-data].
    #[arg(long, env = "SUNDIAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address for HTTP and telnet [default: 127.0.0.1:4242].
    #[arg(long, env = "SUNDIAL_LISTEN")]
    listen: Option<SocketAddr>,
    /// Keep blocks in object storage, e.g. s3://bucket/prefix
    /// (storage.object_store); credentials and endpoint from AWS_*.
    #[arg(long, env = "SUNDIAL_OBJECT_STORE")]
    object_store: Option<String>,
    /// Allow a non-loopback listen address although no credentials are
    /// configured.
    #[arg(long, env = "SUNDIAL_ALLOW_UNAUTHENTICATED")]
    allow_unauthenticated: bool,
    /// The node's part in a cluster (cluster.role): all, router,
    /// ingester, querier, compactor. Any but `all` needs a [cluster]
    /// section.
    #[arg(long, env = "SUNDIAL_ROLE")]
    role: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tune_memory();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SUNDIAL_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => {
            if !check::run(args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Backup(args) => backup::backup(args),
        Command::Query(args) => cli_query::run(args),
        Command::Import(args) => transfer::import(args),
        Command::Export(args) => transfer::export(args),
        Command::Restore(args) => {
            if !backup::restore(args)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// The access keys: the configuration's, and those made through
/// `/admin/keys`, kept in the data directory or, on a cluster, in
/// PostgreSQL (every node reads them again each second).
fn access_store(
    config: &config::FileConfig,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<sundial_api::access::Store> {
    let store = config.access_store()?;
    let store = match &config.cluster {
        Some(cluster) => {
            let doc = runtime.block_on(sundial_cluster::PgDocument::connect(
                &cluster.postgres_url,
                cluster::KEYS_DOCUMENT,
            ))?;
            store.with_book(std::sync::Arc::new(doc), true)?
        }
        None => {
            let path = config.data_dir.join(KEYS_FILE);
            store.with_book(std::sync::Arc::new(FileDocument::open(path)), false)?
        }
    };
    Ok(store)
}

/// Opens `storage.object_store`, when set, for the engine.
fn open_object_store(storage: &mut sundial_storage::Config) -> anyhow::Result<()> {
    if let Some(url) = &storage.object_store {
        let store = sundial_storage::RemoteStore::open(
            url,
            &storage.object_store_options,
            storage.cache_bytes,
        )?;
        tracing::info!(store = %url, "blocks live in object storage");
        storage.remote = Some(store);
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = FileConfig::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    config.allow_unauthenticated |= args.allow_unauthenticated;
    if let Some(role) = args.role {
        match &mut config.cluster {
            Some(cluster) => cluster.role = role,
            None if role == "all" => {}
            None => anyhow::bail!("role {role} needs a [cluster] section (docs/cluster.md)"),
        }
    }
    config.validate()?;
    config.storage.data_dir = config.data_dir.clone();
    if let Some(url) = args.object_store {
        config.storage.object_store = Some(url);
    }
    open_object_store(&mut config.storage)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = std::sync::Arc::new(access_store(&config, &runtime)?);
    config.check_exposure(&store)?;
    let limits = sundial_api::limits::Limits::new(config.limits.clone());
    let engine = sundial_storage::Engine::open(config.storage.clone())?;
    let mut bk = sundial_bkmonitor::Api::new(
        engine.default_db(),
        config.bkmonitor.clone(),
        engine.data_dir(),
        config.opentsdb.max_body_bytes,
        config.opentsdb.max_tags,
        store.clone(),
        limits.clone(),
    )?;
    if let Some(cluster) = &config.cluster {
        // Every node of a cluster sees the same groups and data ids.
        let doc = runtime.block_on(sundial_cluster::PgDocument::connect(
            &cluster.postgres_url,
            "bkmonitor",
        ))?;
        bk = bk.with_shared_metadata(std::sync::Arc::new(doc))?;
    }
    // BlueKing's group binding sees the writes of every other API.
    let hooks = sundial_api::write_hook::WriteHooks::new(vec![std::sync::Arc::new(bk.binder())]);
    let node = match &config.cluster {
        Some(cluster) => Some(runtime.block_on(cluster::Node::start(
            cluster,
            cluster.role()?,
            &config.data_dir,
            &config.storage,
        ))?),
        None => None,
    };
    let metrics = metrics::Metrics::new(engine.clone(), node.as_ref());
    let stats_of = metrics.clone();
    let mut opentsdb = sundial_opentsdb::Api::new(
        engine.clone(),
        config.opentsdb.clone(),
        store.clone(),
        limits.clone(),
    )?
    .with_hooks(hooks.clone())
    .with_stats(sundial_api::stats::StatsSource::new(move || {
        stats_of.opentsdb_stats()
    }));
    let mut baidu =
        sundial_baidu::Api::new(engine.clone(), config.baidu.clone(), store.clone(), limits)?
            .with_hooks(hooks.clone());
    if let (Some(cluster), Some(node)) = (&config.cluster, &node) {
        // Every node of a cluster serves the databases created on any.
        let doc = runtime.block_on(sundial_cluster::PgDocument::connect(
            &cluster.postgres_url,
            "baidu-databases",
        ))?;
        let data = std::sync::Arc::new(node.sharded_data());
        baidu = baidu.with_shared_databases(std::sync::Arc::new(doc), data);
        baidu.sync_databases()?;
        // A request naming a database this node has not opened yet
        // catches up first, on either API.
        let directory = std::sync::Arc::new(cluster::Directory::new(baidu.clone()));
        baidu = baidu.with_directory(directory.clone());
        opentsdb = opentsdb.with_directory(directory);
        runtime.spawn(cluster::keep_databases(baidu.clone()));
        runtime.spawn(cluster::keep_keys(store.clone()));
    }
    // A cluster keeps no rules (`/admin/presampling` answers 501 there).
    let configured_rules = match &node {
        None => sundial_baidu::presampling::apply_configured(&engine, &config.baidu.presampling)
            .map_err(anyhow::Error::msg)?,
        Some(_) if !config.baidu.presampling.is_empty() => {
            tracing::warn!("baidu.presampling is not used on a cluster");
            Default::default()
        }
        Some(_) => Default::default(),
    };
    let mut apis = listener::Apis {
        opentsdb,
        baidu,
        bk,
        metrics,
        engine: engine.clone(),
        store,
        cluster: None,
        configured_rules: std::sync::Arc::new(configured_rules),
    };
    if let Some(node) = &node {
        node.serve_through(&mut apis);
    }
    let result = runtime.block_on(listener::run(&config, apis));
    if let Some(node) = node {
        runtime.block_on(node.stop());
    }
    // Everything acknowledged is in the WAL already; closing also flushes
    // the head so the next start replays little.
    engine.close();
    tracing::info!("stopped");
    result
}
