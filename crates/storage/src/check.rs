//! `sundial check`: reads every file of a data directory, changing
//! nothing, and names each damaged one: catalog records, WAL records and
//! every chunk of every block (local or in the store) against their
//! checksums, and every series a block refers to against the catalog.

use crate::block::{self, Block};
use crate::catalog;
use crate::config::Config;
use crate::engine::{db_config, is_valid_name};
use crate::error::{Error, Result};
use crate::remote::manifest;
use crate::wal;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub databases: usize,
    pub series: usize,
    pub wal_segments: usize,
    pub blocks: usize,
    pub chunks: u64,
    /// Damage: the file and what is wrong.
    pub problems: Vec<(PathBuf, String)>,
    /// What a crash leaves and the next start repairs (a torn last
    /// record).
    pub notes: Vec<(PathBuf, String)>,
}

/// Checks every database under `config.data_dir`; blocks in the store
/// need `config.remote`.
pub fn check(config: &Config) -> Result<Report> {
    let dbs = config.data_dir.join("db");
    let mut names: Vec<String> = std::fs::read_dir(&dbs)
        .map_err(|e| Error::io("list", &dbs, e))?
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| is_valid_name(n))
        .collect();
    names.sort();
    let mut report = Report::default();
    for name in names {
        report.databases += 1;
        check_database(&db_config(config, &name), &mut report)?;
    }
    Ok(report)
}

fn check_database(config: &Config, report: &mut Report) -> Result<()> {
    let dir = &config.data_dir;
    let known = check_catalog(dir, report)?;
    for n in wal::list_segments(dir)? {
        let path = wal::segment_path(dir, n);
        report.wal_segments += 1;
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        if let Some(d) = wal::parse_segment(&bytes, false).damage {
            let what = format!("offset {}: {}", d.offset, d.reason);
            match d.resumes_at {
                Some(_) => report
                    .problems
                    .push((path, format!("{what}, intact records after it"))),
                None => report.notes.push((path, format!("{what} (torn tail)"))),
            }
        }
    }
    for b in blocks(config, report)? {
        report.blocks += 1;
        check_block(&b, &known, report);
    }
    Ok(())
}

/// The series ids the catalog defines.
fn check_catalog(dir: &Path, report: &mut Report) -> Result<HashSet<u32>> {
    let path = dir.join("series.cat");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let parsed = match catalog::parse(&path, &bytes) {
        Ok(p) => p,
        Err(e) => {
            report.problems.push((path, e.to_string()));
            return Ok(HashSet::new());
        }
    };
    if let Some((offset, reason)) = parsed.damage {
        // A crash tears the last record only: anything after the damage
        // means a record in the middle went bad.
        let torn = reason == "torn record";
        let entry = (path.clone(), format!("offset {offset}: {reason}"));
        match torn {
            true => report.notes.push(entry),
            false => report.problems.push(entry),
        }
    }
    report.series += parsed.defs.len();
    Ok(parsed.defs.iter().map(|(id, _)| id.0).collect())
}

/// Opens the database's blocks, local and in the store, reporting those
/// that do not open.
fn blocks(config: &Config, report: &mut Report) -> Result<Vec<Block>> {
    let dir = &config.data_dir;
    let mut out = Vec::new();
    for id in block::list_blocks(dir)? {
        let path = block::block_path(dir, id);
        match Block::open(&path, id) {
            Ok(b) => out.push(b),
            Err(e) => report.problems.push((path, e.to_string())),
        }
    }
    let Some((url, entries)) = manifest::read(dir)? else {
        return Ok(out);
    };
    let Some(store) = &config.remote else {
        if !entries.is_empty() {
            report.problems.push((
                manifest::path(dir),
                format!(
                    "its {} blocks are in {url}: check with --object-store",
                    entries.len()
                ),
            ));
        }
        return Ok(out);
    };
    for entry in &entries {
        match Block::open_remote(store, entry) {
            Ok(b) => out.push(b),
            Err(e) => report
                .problems
                .push((PathBuf::from(format!("{url}/{}", entry.key)), e.to_string())),
        }
    }
    Ok(out)
}

/// Reads every chunk and its presampled buckets (each checks its frame
/// checksum and point count) and looks up every series in the catalog.
fn check_block(b: &Block, known: &HashSet<u32>, report: &mut Report) {
    let columns: Vec<_> = b.columns().map(|(id, f)| (id, f.to_owned())).collect();
    let mut unknown = 0usize;
    for (id, field) in columns {
        if !known.contains(&id.0) {
            unknown += 1;
        }
        for entry in b.chunks(id, &field).iter() {
            report.chunks += 1;
            // A rollups-only block's chunks are their buckets alone.
            if let Err(e) = b.read_chunk(entry).and_then(|_| b.check_rollups(entry)) {
                report.problems.push((b.path().to_owned(), e.to_string()));
                return;
            }
        }
    }
    if unknown > 0 {
        report.problems.push((
            b.path().to_owned(),
            format!("{unknown} columns of series the catalog does not define"),
        ));
    }
}
