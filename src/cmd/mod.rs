//! One module per group of subcommands; each holds clap `Args` and a `run` function
//! returning the process exit code.

pub mod demo;
pub mod ingest;
pub mod query;
pub mod report;
pub mod simulate;
pub mod validate;

/// Makes culla's files private: everything a culla process creates is readable by its
/// user only (files 0600, folders 0700), the data directory's events, dead letters,
/// log, commits and caches above all. Outputs meant for publication are opened up one by
/// one ([`published`]).
#[allow(unsafe_code)] // one FFI call without pointers: std has no way to set the umask
pub fn private_by_default() {
    #[cfg(unix)]
    // SAFETY: umask takes and returns a plain integer and touches no memory of ours.
    unsafe {
        libc::umask(0o077);
    }
}

/// Makes a file written for publication (a report, a protected table, an export)
/// readable by everyone, as files are without culla's private default.
pub fn published(path: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| anyhow::anyhow!("cannot make {} readable: {e}", path.display()))?;
    }
    Ok(())
}
