//! Bringing a data directory back to a clean state after a crash.
//!
//! A writer can die at any step of write → commit → delete. The tables' Delta logs
//! decide what happened: a file a commit lists is committed; a data file in a table
//! folder that no commit lists was never committed, and is deleted once its writer (named
//! in the file name, `part-<writer>-<uuid>.parquet`) is known dead; a file a commit
//! removed but still on disk is deleted (under the exclusive read lock, so no reader
//! loses it mid-query). Delta readers never see uncommitted files; deleting them keeps a
//! plain Parquet glob of a table folder exact too. Recovery is idempotent and safe to run
//! while other culla writers are alive: it never touches a live writer's files.

use crate::Result;
use crate::error::io_err;
use crate::files;
use culla_schemas::layout::{DataDir, TABLE_DEAD_LETTERS, TABLE_EVENTS};
use culla_table::Snapshot;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Uncommitted files of dead writers deleted.
    pub uncommitted_deleted: usize,
    /// Files removed by a commit but still present, deleted.
    pub removed_deleted: usize,
    /// Live files of the tables missing from disk (data lost outside culla).
    pub missing: Vec<String>,
}

impl Recovered {
    /// Whether anything needed fixing.
    pub fn is_clean(&self) -> bool {
        *self == Recovered::default()
    }
}

/// Recovers `dir` and returns its snapshot afterwards.
pub fn recover(dir: &DataDir) -> Result<(Snapshot, Recovered)> {
    let snap = Snapshot::load(dir)?;
    let mut rep = Recovered::default();

    for f in snap.files.values() {
        if !dir.resolve(&f.path).exists() {
            tracing::error!(path = %f.path, "a live file of the table is missing");
            rep.missing.push(f.path.clone());
        }
    }

    // Uncommitted files of dead writers.
    let mut alive: BTreeMap<String, bool> = BTreeMap::new();
    let mut victims: Vec<PathBuf> = Vec::new();
    for table in [TABLE_EVENTS, TABLE_DEAD_LETTERS] {
        let mut found = Vec::new();
        data_files(dir.root(), table, &mut found)?;
        for rel in found {
            if snap.files.contains_key(&rel) {
                continue;
            }
            let Some(writer) = culla_table::writer_of(&rel) else {
                continue; // not culla's: left alone (a removed file is handled below)
            };
            let live = match alive.get(writer) {
                Some(&l) => l,
                None => {
                    let l = writer_alive(dir, writer)?;
                    alive.insert(writer.to_string(), l);
                    l
                }
            };
            if !live && !snap.removed.contains(&rel) {
                victims.push(dir.resolve(&rel));
            }
        }
    }
    rep.uncommitted_deleted += crate::files::delete_files(&victims)?;
    for (w, live) in &alive {
        if !live {
            let _ = fs::remove_file(dir.writers_dir().join(format!("{w}.lock")));
        }
    }
    if rep.uncommitted_deleted > 0 {
        tracing::info!(
            files = rep.uncommitted_deleted,
            "deleted uncommitted files of dead writers"
        );
    }

    // Files removed by a commit but still on disk.
    let removed: Vec<String> = snap
        .removed
        .iter()
        .filter(|p| !snap.files.contains_key(*p))
        .cloned()
        .collect();
    rep.removed_deleted = files::delete_removed(dir, &removed)?;
    if rep.removed_deleted > 0 {
        tracing::info!(
            files = rep.removed_deleted,
            "deleted files removed by a commit"
        );
    }
    Ok((snap, rep))
}

/// The `.parquet` files under a table folder (not its `_delta_log`), relative to the
/// data directory.
fn data_files(root: &Path, table: &str, out: &mut Vec<String>) -> Result<()> {
    fn walk(abs: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
        let entries = match fs::read_dir(abs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("list", abs)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("list", abs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            let kind = entry.file_type().map_err(io_err("stat", &entry.path()))?;
            if kind.is_dir() {
                if !name.starts_with('_') {
                    walk(&entry.path(), &child, out)?;
                }
            } else if name.ends_with(".parquet") {
                out.push(child);
            }
        }
        Ok(())
    }
    walk(&root.join(table), table, out)
}

/// Whether the writer `id` still holds its lock.
fn writer_alive(dir: &DataDir, id: &str) -> Result<bool> {
    let lp = dir.writers_dir().join(format!("{id}.lock"));
    let f = match OpenOptions::new().write(true).open(&lp) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("open", &lp)(e)),
    };
    match f.try_lock() {
        Ok(()) => Ok(false),
        Err(fs::TryLockError::WouldBlock) => Ok(true),
        Err(fs::TryLockError::Error(e)) => Err(io_err("lock", &lp)(e)),
    }
}
