//! Bringing a data directory back to a clean state after a crash.
//!
//! A writer can die at any step of write → commit → rename → delete. The manifest
//! decides what happened: a file listed by a commit is committed, even if it still sits
//! in `_culla/staging/` (it is rolled forward: renamed into place); a staged file no
//! commit lists was never committed (it is deleted, once its writer is known dead); a
//! file a commit removed but still on disk is deleted (under the exclusive read lock,
//! so no reader loses it mid-query). Recovery is idempotent and safe to run while other
//! culla writers are alive: it never touches a live writer's staging files.

use crate::Result;
use crate::error::io_err;
use crate::files;
use culla_schemas::layout::{self, DataDir, FileEntry, Snapshot};
use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Committed files moved from staging into place.
    pub rolled_forward: usize,
    /// Uncommitted staged files of dead writers deleted.
    pub staged_deleted: usize,
    /// Files removed by a commit but still present, deleted.
    pub removed_deleted: usize,
    /// Live files of the manifest missing from disk and from staging (data lost outside culla).
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
    let commits = layout::read_commits(dir)?;
    let mut snap = Snapshot::default();
    let mut all_staged = BTreeSet::new();
    for c in &commits {
        snap.apply(c);
        for f in &c.add {
            all_staged.insert(f.staged.clone());
        }
    }
    let mut rep = Recovered::default();

    // 1. Roll committed files forward.
    let mut to_publish: Vec<FileEntry> = Vec::new();
    for f in snap.files.values() {
        if dir.resolve(&f.path).exists() {
            continue;
        }
        if dir.staging_dir().join(&f.staged).exists() {
            to_publish.push(f.clone());
        } else {
            tracing::error!(path = %f.path, "a live file of the manifest is missing");
            rep.missing.push(f.path.clone());
        }
    }
    if !to_publish.is_empty() {
        files::publish(dir, &to_publish)?;
        rep.rolled_forward = to_publish.len();
        tracing::info!(files = rep.rolled_forward, "rolled committed files forward");
    }

    // 2. Staged files: committed-then-removed ones and dead writers' orphans go.
    let sdir = dir.staging_dir();
    let live_staged: BTreeSet<&str> = snap.files.values().map(|f| f.staged.as_str()).collect();
    if let Ok(entries) = fs::read_dir(&sdir) {
        let mut dead_writers: Vec<String> = Vec::new();
        let mut alive_writers: BTreeSet<String> = BTreeSet::new();
        let mut victims = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list", &sdir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".lock") {
                continue;
            }
            if live_staged.contains(name.as_str()) {
                continue; // rolled forward above, or being renamed by its writer
            }
            if all_staged.contains(&name) {
                victims.push(name); // committed, then removed by a later commit
                continue;
            }
            let writer = name.split('-').next().unwrap_or_default().to_string();
            if alive_writers.contains(&writer) {
                continue;
            }
            if dead_writers.contains(&writer) || !writer_alive(dir, &writer)? {
                if !dead_writers.contains(&writer) {
                    dead_writers.push(writer);
                }
                victims.push(name);
            } else {
                alive_writers.insert(writer);
            }
        }
        for name in &victims {
            let p = sdir.join(name);
            match fs::remove_file(&p) {
                Ok(()) => rep.staged_deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("delete", &p)(e)),
            }
        }
        for w in &dead_writers {
            let _ = fs::remove_file(sdir.join(format!("{w}.lock")));
        }
        if !victims.is_empty() {
            layout::sync_dir(&sdir)?;
            tracing::info!(
                files = rep.staged_deleted,
                "deleted uncommitted staged files"
            );
        }
    }

    // 3. Files removed by a commit but still on disk.
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

/// Whether the writer `id` still holds its staging lock.
fn writer_alive(dir: &DataDir, id: &str) -> Result<bool> {
    if id.is_empty() {
        return Ok(false);
    }
    let lp = dir.staging_dir().join(format!("{id}.lock"));
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
