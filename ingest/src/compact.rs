//! `culla compact`: merging the small files a streaming ingest leaves into large ones.
//!
//! Ingest writes one file per (`source`, `event_date`) at every flush, so a day that
//! trickles in over hours becomes many small files. Compaction merges the small files
//! of each partition directory (per table) into files of about `--target-mb`, streaming
//! row groups (never a whole partition in memory). Each merge is one Delta commit
//! (operation `compact`, Delta's `OPTIMIZE`: `dataChange` false) that adds the merged
//! file and removes the inputs; rows keep their lineage columns (`topic`, `partition`,
//! `offset`). It is safe while ingest runs (on a lost race it reads the new commits and
//! retries, and gives up a merge whose inputs another process changed) and after a
//! crash at any step (recovery deletes an uncommitted merged file). The replaced files
//! are deleted right after the commit, under the exclusive read lock, so culla's
//! readers never lose a file mid-query and a plain Parquet glob of the table folder
//! reads every row once.

use crate::error::io_err;
use crate::files::{self, Staging};
use crate::recovery;
use crate::{Error, Result};
use culla_schemas::layout::DataDir;
use culla_table::{Commit, Committed, FileEntry, Snapshot};
use datafusion::parquet::arrow::ArrowWriter;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;

/// What to merge.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Merged files grow to about this size; files at least this large are left alone.
    pub target_bytes: u64,
    /// Merge a partition directory only when it has at least this many small files.
    pub min_files: usize,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_bytes: 128 * 1024 * 1024,
            min_files: 2,
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactSummary {
    /// Files merged away.
    pub files_in: u64,
    /// Merged files written.
    pub files_out: u64,
    /// Rows moved.
    pub rows: u64,
    /// Bytes before.
    pub bytes_in: u64,
    /// Bytes after.
    pub bytes_out: u64,
    /// Merges given up because another process changed their inputs.
    pub skipped: u64,
}

impl fmt::Display for CompactSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files merged into {} ({} rows, {:.1} MB → {:.1} MB)",
            self.files_in,
            self.files_out,
            self.rows,
            self.bytes_in as f64 / 1e6,
            self.bytes_out as f64 / 1e6
        )?;
        if self.skipped > 0 {
            write!(
                f,
                "; {} merges skipped (inputs changed meanwhile)",
                self.skipped
            )?;
        }
        Ok(())
    }
}

/// Groups of small live files to merge, each within one table and directory.
fn plan(snap: &Snapshot, opts: &CompactOptions) -> Vec<Vec<FileEntry>> {
    let mut by_dir: BTreeMap<(String, String), Vec<FileEntry>> = BTreeMap::new();
    for f in snap.files.values() {
        if f.bytes >= opts.target_bytes {
            continue;
        }
        let parent = f.path.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        by_dir
            .entry((f.table.clone(), parent))
            .or_default()
            .push(f.clone());
    }
    let mut out = Vec::new();
    for (_, files) in by_dir {
        if files.len() < opts.min_files.max(2) {
            continue;
        }
        let mut chunk: Vec<FileEntry> = Vec::new();
        let mut size = 0;
        for f in files {
            if !chunk.is_empty() && size + f.bytes > opts.target_bytes {
                if chunk.len() >= 2 {
                    out.push(std::mem::take(&mut chunk));
                } else {
                    chunk.clear();
                }
                size = 0;
            }
            size += f.bytes;
            chunk.push(f);
        }
        if chunk.len() >= 2 {
            out.push(chunk);
        }
    }
    out
}

/// Streams the inputs into one staged file.
fn merge(dir: &DataDir, staging: &Staging, inputs: &[FileEntry]) -> Result<FileEntry> {
    let parent = inputs[0].path.rsplit_once('/').map_or("", |(p, _)| p);
    let (rel, path) = staging.new_file(parent)?;
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    let mut rows = 0u64;
    for f in inputs {
        let src = dir.resolve(&f.path);
        for b in files::open_parquet(&src, None)? {
            let b = b?;
            rows += b.num_rows() as u64;
            let w = match &mut writer {
                Some(w) => w,
                None => {
                    let file = OpenOptions::new()
                        .create_new(true)
                        .write(true)
                        .open(&path)
                        .map_err(io_err("create", &path))?;
                    let props = files::writer_properties_for(Some(&b.schema()));
                    let w =
                        ArrowWriter::try_new(file, b.schema(), Some(props)).map_err(|source| {
                            Error::Parquet {
                                action: "write",
                                path: path.clone(),
                                source,
                            }
                        })?;
                    writer.insert(w)
                }
            };
            w.write(&b).map_err(|source| Error::Parquet {
                action: "write",
                path: path.clone(),
                source,
            })?;
        }
    }
    let Some(w) = writer else {
        return Err(Error::BadInput(
            "nothing to merge: the input files are empty".into(),
        ));
    };
    let file = w.into_inner().map_err(|source| Error::Parquet {
        action: "write",
        path: path.clone(),
        source,
    })?;
    file.sync_all().map_err(io_err("sync", &path))?;
    let bytes = file.metadata().map_err(io_err("stat", &path))?.len();
    let expect: u64 = inputs.iter().map(|f| f.rows).sum();
    if rows != expect {
        let _ = std::fs::remove_file(&path);
        return Err(Error::BadInput(format!(
            "the table log says {expect} rows but the files hold {rows}; not compacting {}",
            inputs[0].path.rsplit_once('/').map_or("", |(p, _)| p)
        )));
    }
    Ok(FileEntry {
        table: inputs[0].table.clone(),
        path: rel,
        rows,
        bytes,
    })
}

/// Merges the small files of every partition directory of `dir`.
pub fn compact(dir: &DataDir, opts: &CompactOptions) -> Result<CompactSummary> {
    let staging = Staging::open(dir)?;
    let (mut snap, _) = recovery::recover(dir)?;
    let tag = files::writer_tag();
    let mut sum = CompactSummary::default();
    for inputs in plan(&snap, opts) {
        let merged = merge(dir, &staging, &inputs)?;
        staging.sync(&[merged.path.as_str()])?;
        let remove: Vec<String> = inputs.iter().map(|f| f.path.clone()).collect();
        let committed = loop {
            culla_table::catch_up(dir, &mut snap)?;
            if remove.iter().any(|p| !snap.files.contains_key(p)) {
                break None;
            }
            let mut c = Commit::new("compact", &tag);
            c.add = vec![merged.clone()];
            c.remove = remove.clone();
            c.stats.insert("rows".to_string(), merged.rows);
            if culla_table::try_commit(dir, &mut snap, &c)? == Committed::Done {
                break Some(c);
            }
        };
        match committed {
            Some(c) => {
                files::delete_removed(dir, &c.remove)?;
                sum.files_in += inputs.len() as u64;
                sum.files_out += 1;
                sum.rows += merged.rows;
                sum.bytes_in += inputs.iter().map(|f| f.bytes).sum::<u64>();
                sum.bytes_out += merged.bytes;
            }
            None => {
                let _ = std::fs::remove_file(staging.path(&merged.path));
                sum.skipped += 1;
            }
        }
    }
    Ok(sum)
}
