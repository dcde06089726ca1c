//! Cache files that prove they are whole before they are read.
//!
//! Every file culla derives from the tables for speed (the consolidated event copies,
//! the persisted projections) can be thrown away and made again, so a damaged one must
//! never fail a question: it must be noticed and rebuilt. A Parquet footer only proves
//! the end of a file; a flipped byte in a data page surfaces in the middle of a query
//! ("failed to fill whole buffer", "Src size is incorrect"). So each such file is
//! written through a [`SealWriter`], which hashes its bytes (xxHash64) as they go, and
//! [`seal`] makes it durable (fsync) and gives it a name that carries the hash:
//! `<stem>-<16 hex digits>.parquet`. [`check`] reads a file back against its name, and
//! [`find_whole`] picks a file of a stem that checks. A published file is never
//! replaced by another of different content (two writers of one view write two names,
//! or the same name with the same bytes), so a reader that planned a query on a file
//! never finds other bytes under it. Reading a file back costs about a tenth of a
//! second per 100 MB from the page cache, far less than computing it, and a process
//! checks each file once (remembered by path, inode, length and modification time).

use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use twox_hash::XxHash64;

/// A writer that hashes what passes through it.
pub struct SealWriter<W: Write> {
    inner: W,
    hash: XxHash64,
}

impl<W: Write> SealWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        SealWriter {
            inner,
            hash: XxHash64::with_seed(0),
        }
    }

    /// The wrapped writer and the hash of everything written.
    pub fn finish(self) -> (W, u64) {
        (self.inner, self.hash.finish())
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.write(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The name of a sealed file of `stem` whose bytes hash to `hash`.
pub fn sealed_name(stem: &str, hash: u64) -> String {
    format!("{stem}-{hash:016x}.parquet")
}

/// (stem, hash) of a sealed file's name.
fn parse_name(file: &Path) -> Option<(&str, u64)> {
    let name = file.file_name()?.to_str()?.strip_suffix(".parquet")?;
    let (stem, hex) = name.rsplit_once('-')?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
        .map(|h| (stem, h))
}

/// Makes the temporary file `tmp` (written through a [`SealWriter`] whose `finish` gave
/// `hash`, and whose `BufWriter` is flushed) durable and renames it to its sealed name
/// in `dir`, which it returns. A file already there under that name has the same bytes.
pub fn seal(file: File, tmp: &Path, dir: &Path, stem: &str, hash: u64) -> io::Result<PathBuf> {
    file.sync_all()?;
    drop(file);
    let dest = dir.join(sealed_name(stem, hash));
    fs::rename(tmp, &dest)?;
    File::open(dir)?.sync_all()?;
    Ok(dest)
}

/// A file of `stem` in `dir` that is whole ([`check`]), if any.
pub fn find_whole(dir: &Path, stem: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| parse_name(p).is_some_and(|(s, _)| s == stem))
        .collect();
    found.sort();
    found.into_iter().find(|p| match check(p) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "damaged cache file; it is made again");
            false
        }
    })
}

/// Files this process found whole: (path, inode, length, modified).
type Seen = (PathBuf, u64, u64, Option<std::time::SystemTime>);
static CHECKED: std::sync::Mutex<Vec<Seen>> = std::sync::Mutex::new(Vec::new());

fn identity(file: &Path) -> Option<Seen> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(file).ok()?;
    Some((file.to_path_buf(), m.ino(), m.len(), m.modified().ok()))
}

/// Whether `file` is exactly what its seal recorded: same length, same hash.
pub fn check(file: &Path) -> Result<(), String> {
    let seen = identity(file);
    let mut memo = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if seen.as_ref().is_some_and(|s| memo.contains(s)) {
        return Ok(());
    }
    drop(memo);
    check_bytes(file)?;
    if let Some(s) = seen {
        memo = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
        // A long-running server sees a few files per commit; old ones are let go.
        if memo.len() >= 4096 {
            memo.clear();
        }
        memo.push(s);
    }
    Ok(())
}

fn check_bytes(file: &Path) -> Result<(), String> {
    let Some((_, want)) = parse_name(file) else {
        return Err(format!("{} has no seal in its name", file.display()));
    };
    let mut f = File::open(file).map_err(|e| format!("open {}: {e}", file.display()))?;
    let mut hash = XxHash64::with_seed(0);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("read {}: {e}", file.display()))?;
        if n == 0 {
            break;
        }
        hash.write(&buf[..n]);
    }
    if hash.finish() != want {
        return Err(format!("{} does not match its seal", file.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_sealed(dir: &Path, stem: &str, body: &[u8]) -> PathBuf {
        let tmp = dir.join(format!(".tmp-{stem}"));
        let mut w = SealWriter::new(io::BufWriter::new(File::create(&tmp).unwrap()));
        w.write_all(body).unwrap();
        let (buf, hash) = w.finish();
        let file = buf.into_inner().unwrap();
        seal(file, &tmp, dir, stem, hash).unwrap()
    }

    #[test]
    fn a_sealed_file_checks_and_any_damage_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let f = write_sealed(tmp.path(), "need_base", &body);
        assert_eq!(check(&f), Ok(()));
        assert!(!tmp.path().join(".tmp-need_base").exists());
        assert_eq!(find_whole(tmp.path(), "need_base"), Some(f.clone()));
        assert_eq!(find_whole(tmp.path(), "need"), None);

        // The bytes themselves (`check` remembers a file it found whole in this process,
        // and these rewrites may fall in the same clock tick).
        let mut bad = body.clone();
        bad[200_000] ^= 0x10;
        fs::write(&f, &bad).unwrap();
        assert!(check_bytes(&f).unwrap_err().contains("does not match"));
        fs::write(&f, &body[..body.len() - 1]).unwrap();
        assert!(check_bytes(&f).is_err());
        let unsealed = tmp.path().join("need_base.parquet");
        fs::write(&unsealed, &body).unwrap();
        assert!(check(&unsealed).unwrap_err().contains("no seal"));
        // A second writer of other bytes publishes another name; the first stays.
        let g = write_sealed(tmp.path(), "need_base", b"other bytes");
        assert_ne!(f, g);
        assert!(f.exists());
    }
}
