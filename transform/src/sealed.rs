//! Cache files that prove they are whole before they are read.
//!
//! Every file culla derives from the tables for speed (the consolidated event copies,
//! the persisted projections) can be thrown away and made again, so a damaged one must
//! never fail a question: it must be noticed and rebuilt. A Parquet footer only proves
//! the end of a file; a flipped byte in a data page surfaces in the middle of a query
//! ("failed to fill whole buffer", "Deserializing page header failed"). So each such
//! file is written through a [`SealWriter`], which hashes its bytes (xxHash64) as they
//! go, and [`seal`] makes it durable (fsync), then records the length and hash beside it
//! in `<file>.sum` *before* the file gets its final name. [`check`] reads the whole file
//! back against that record; a reader uses a cache file only after `check` passed and
//! otherwise rebuilds it. Reading a file back costs about a tenth of a second per
//! 100 MB from the page cache, far less than computing it, and a process checks each
//! file once (remembered by path, inode, length and modification time).

use std::fs::{self, File};
use std::hash::Hasher;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use twox_hash::XxHash64;

/// A writer that hashes and counts what passes through it.
pub struct SealWriter<W: Write> {
    inner: W,
    hash: XxHash64,
    len: u64,
}

impl<W: Write> SealWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        SealWriter {
            inner,
            hash: XxHash64::with_seed(0),
            len: 0,
        }
    }

    /// The wrapped writer, the byte count and the hash of everything written.
    pub fn finish(self) -> (W, u64, u64) {
        (self.inner, self.len, self.hash.finish())
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.write(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `<file>.sum`.
pub fn sum_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".sum");
    file.with_file_name(name)
}

fn record(len: u64, hash: u64) -> String {
    format!("xxh64 {hash:016x} {len}\n")
}

/// Makes the temporary file `tmp` (written through a [`SealWriter`] whose `finish` gave
/// `len` and `hash`, and whose `BufWriter` is flushed) durable, records its seal beside
/// `dest`, and renames it to `dest`. A reader that finds `dest` finds its seal too; a
/// seal left from an earlier write of `dest` only makes [`check`] fail until the rename.
pub fn seal(file: File, tmp: &Path, dest: &Path, len: u64, hash: u64) -> io::Result<()> {
    file.sync_all()?;
    drop(file);
    let sum = sum_path(dest);
    let mut sum_tmp = tmp.as_os_str().to_os_string();
    sum_tmp.push(".sum");
    let sum_tmp = PathBuf::from(sum_tmp);
    let mut f = File::create(&sum_tmp)?;
    f.write_all(record(len, hash).as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&sum_tmp, &sum)?;
    fs::rename(tmp, dest)?;
    if let Some(dir) = dest.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
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
    let sum = fs::read_to_string(sum_path(file))
        .map_err(|e| format!("no seal for {}: {e}", file.display()))?;
    let mut parts = sum.split_whitespace();
    let (Some("xxh64"), Some(hash), Some(len)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("unreadable seal for {}", file.display()));
    };
    let want_hash = u64::from_str_radix(hash, 16)
        .map_err(|_| format!("unreadable seal for {}", file.display()))?;
    let want_len: u64 = len
        .parse()
        .map_err(|_| format!("unreadable seal for {}", file.display()))?;
    let mut f = File::open(file).map_err(|e| format!("open {}: {e}", file.display()))?;
    let have_len = f
        .metadata()
        .map_err(|e| format!("stat {}: {e}", file.display()))?
        .len();
    if have_len != want_len {
        return Err(format!(
            "{} has {have_len} bytes, sealed with {want_len}",
            file.display()
        ));
    }
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
    if hash.finish() != want_hash {
        return Err(format!("{} does not match its seal", file.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_sealed(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
        let tmp = dir.join(format!(".tmp-{name}"));
        let dest = dir.join(name);
        let mut w = SealWriter::new(io::BufWriter::new(File::create(&tmp).unwrap()));
        w.write_all(body).unwrap();
        let (buf, len, hash) = w.finish();
        let file = buf.into_inner().unwrap();
        seal(file, &tmp, &dest, len, hash).unwrap();
        dest
    }

    #[test]
    fn a_sealed_file_checks_and_any_damage_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let f = write_sealed(tmp.path(), "a.parquet", &body);
        assert_eq!(check(&f), Ok(()));
        assert!(!tmp.path().join(".tmp-a.parquet").exists());

        // The bytes themselves (`check` remembers a file it found whole in this process,
        // and these rewrites may fall in the same clock tick).
        // One flipped bit in the middle.
        let mut bad = body.clone();
        bad[200_000] ^= 0x10;
        fs::write(&f, &bad).unwrap();
        assert!(check_bytes(&f).unwrap_err().contains("does not match"));
        // Cut short.
        fs::write(&f, &body[..body.len() - 1]).unwrap();
        assert!(check_bytes(&f).unwrap_err().contains("sealed with"));
        // No seal at all.
        fs::write(&f, &body).unwrap();
        assert_eq!(check_bytes(&f), Ok(()));
        fs::remove_file(sum_path(&f)).unwrap();
        assert!(check_bytes(&f).unwrap_err().contains("no seal"));
    }
}
