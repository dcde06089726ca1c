//! The set of stored `event_id`s, in about 17 bytes an id whatever the data's size.
//!
//! Ingest drops an event whose `event_id` is already stored, so it keeps every stored
//! id (as the UUID's 128 bits) in memory. A hash set needs 17 bytes a slot at a load of
//! 44–87 %, and doubles when it grows: about 40 bytes an id at the worst moment, which
//! made peak memory grow with the data (3M stored events: +150 MB). [`IdSet`] spreads
//! the ids over buckets by a hash of the id; each bucket is a sorted vector plus a short
//! unsorted tail that is merged in once it holds [`TAIL`] ids. When buckets hold
//! [`AVG_BUCKET`] ids on average, each is split in two by the next bit of the hash
//! (a split keeps both halves sorted), so a look-up stays one scan of at most [`TAIL`]
//! ids and one binary search over a few kilobytes, and growth reallocates one small
//! bucket at a time, with at most 1/8 spare room.

/// Buckets of an empty set (a power of two).
const START_BITS: u32 = 10;

/// Unsorted ids a bucket takes before they are merged into its sorted part.
pub const TAIL: usize = 16;

/// Average ids a bucket holds before every bucket is split in two.
pub const AVG_BUCKET: usize = 256;

#[derive(Debug, Clone, Default)]
struct Bucket {
    sorted: Vec<u128>,
    tail: Vec<u128>,
}

/// `sorted.binary_search(&id)`, starting where `id` would sit if ids were uniform (they
/// are for random UUIDs, whatever the bucket): one or two cache misses instead of one
/// per halving on a large set. Other ids (sequential, time-ordered) still get a
/// logarithmic search by galloping from the guess.
fn search(sorted: &[u128], id: u128) -> Result<usize, usize> {
    let n = sorted.len();
    if n < 8 {
        return sorted.binary_search(&id);
    }
    let guess = (((id >> 64) * n as u128) >> 64) as usize;
    let g = guess.min(n - 1);
    let (lo, hi) = if sorted[g] < id {
        // Gallop right: sorted[lo] < id, find hi with id <= sorted[hi] (or the end).
        let (mut lo, mut step) = (g, 1);
        loop {
            let next = lo + step;
            if next >= n {
                break (lo + 1, n);
            }
            if sorted[next] >= id {
                break (lo + 1, next + 1);
            }
            lo = next;
            step *= 2;
        }
    } else {
        // Gallop left: id <= sorted[hi - 1].
        let (mut hi, mut step) = (g + 1, 1);
        loop {
            if hi <= step {
                break (0, hi);
            }
            let next = hi - 1 - step;
            if sorted[next] < id {
                break (next + 1, hi);
            }
            hi = next + 1;
            step *= 2;
        }
    };
    match sorted[lo..hi].binary_search(&id) {
        Ok(i) => Ok(lo + i),
        Err(i) => Err(lo + i),
    }
}

impl Bucket {
    fn contains(&self, id: u128) -> bool {
        self.tail.contains(&id) || search(&self.sorted, id).is_ok()
    }

    /// Merges the tail into the sorted part, in place from the back.
    fn merge(&mut self) {
        self.tail.sort_unstable();
        let (n, k) = (self.sorted.len(), self.tail.len());
        if self.sorted.capacity() < n + k {
            self.sorted.reserve_exact(k + (n + k) / 8);
        }
        self.sorted.resize(n + k, 0);
        let (mut i, mut j, mut w) = (n, k, n + k);
        while j > 0 {
            if i > 0 && self.sorted[i - 1] > self.tail[j - 1] {
                self.sorted[w - 1] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[w - 1] = self.tail[j - 1];
                j -= 1;
            }
            w -= 1;
        }
        self.tail.clear();
    }
}

/// A set of 128-bit ids (see the module documentation).
#[derive(Debug, Clone)]
pub struct IdSet {
    buckets: Vec<Bucket>,
    /// `buckets.len() == 1 << bits`.
    bits: u32,
    len: usize,
}

impl Default for IdSet {
    fn default() -> Self {
        IdSet {
            buckets: vec![Bucket::default(); 1 << START_BITS],
            bits: START_BITS,
            len: 0,
        }
    }
}

/// A 64-bit mix of both halves of an id; buckets take its top bits (UUIDs of version 7
/// start with a timestamp, so the id's own top bits would crowd a few buckets).
fn mix(id: u128) -> u64 {
    let x = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
    (x ^ (x >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl IdSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn bucket_of(&self, id: u128) -> usize {
        (mix(id) >> (64 - self.bits)) as usize
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &u128) -> bool {
        self.buckets[self.bucket_of(*id)].contains(*id)
    }

    /// Adds `id`; false if it was already there.
    pub fn insert(&mut self, id: u128) -> bool {
        let i = self.bucket_of(id);
        let b = &mut self.buckets[i];
        if b.contains(id) {
            return false;
        }
        b.tail.push(id);
        if b.tail.len() >= TAIL {
            b.merge();
        }
        self.len += 1;
        if self.len > self.buckets.len() * AVG_BUCKET {
            self.split();
        }
        true
    }

    /// Doubles the buckets: bucket `i` becomes `2i` and `2i + 1` by the next hash bit.
    fn split(&mut self) {
        let bits = self.bits + 1;
        let old = std::mem::take(&mut self.buckets);
        let mut new = Vec::with_capacity(old.len() * 2);
        for mut b in old {
            b.merge();
            let high = |id: &u128| (mix(*id) >> (64 - bits)) & 1 == 1;
            let n_high = b.sorted.iter().filter(|id| high(id)).count();
            let mut lo = Vec::with_capacity(b.sorted.len() - n_high);
            let mut hi = Vec::with_capacity(n_high);
            for id in b.sorted {
                if high(&id) {
                    hi.push(id);
                } else {
                    lo.push(id);
                }
            }
            new.push(Bucket {
                sorted: lo,
                tail: Vec::new(),
            });
            new.push(Bucket {
                sorted: hi,
                tail: Vec::new(),
            });
        }
        self.buckets = new;
        self.bits = bits;
    }

    /// Removes `id`; false if it was not there.
    pub fn remove(&mut self, id: &u128) -> bool {
        let i = self.bucket_of(*id);
        let b = &mut self.buckets[i];
        if let Some(i) = b.tail.iter().position(|x| x == id) {
            b.tail.swap_remove(i);
        } else if let Ok(i) = search(&b.sorted, *id) {
            b.sorted.remove(i);
        } else {
            return false;
        }
        self.len -= 1;
        true
    }

    /// How many ids the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Removes every id.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Every id, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.buckets
            .iter()
            .flat_map(|b| b.sorted.iter().chain(b.tail.iter()).copied())
    }

    /// Bytes held by the ids (capacity included) and the buckets, for tests and logs.
    pub fn heap_bytes(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| (b.sorted.capacity() + b.tail.capacity()) * 16)
            .sum::<usize>()
            + self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }
}

impl Extend<u128> for IdSet {
    fn extend<I: IntoIterator<Item = u128>>(&mut self, iter: I) {
        for id in iter {
            self.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A deterministic stream of ids: random-looking, and also sequential ones (the
    /// worst case for bucketing by the id's own bits).
    fn ids(n: usize) -> Vec<u128> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    i as u128
                } else {
                    (u128::from(x) << 64) | u128::from(x.rotate_left(17))
                }
            })
            .collect()
    }

    #[test]
    fn behaves_like_a_hash_set() {
        // Enough ids for two splits of the buckets (1,024 → 4,096).
        let all = ids(800_000);
        let mut ours = IdSet::new();
        let mut theirs = HashSet::new();
        for (i, id) in all.iter().enumerate() {
            assert_eq!(ours.insert(*id), theirs.insert(*id));
            // Re-insert an earlier id now and then: a duplicate.
            if i % 7 == 0 {
                let old = all[i / 2];
                assert_eq!(ours.insert(old), theirs.insert(old));
            }
        }
        assert_eq!(ours.len(), theirs.len());
        for id in all.iter().step_by(5) {
            assert_eq!(ours.remove(id), theirs.remove(id));
            assert_eq!(ours.remove(id), theirs.remove(id), "second removal");
        }
        assert_eq!(ours.len(), theirs.len());
        for id in &all {
            assert_eq!(ours.contains(id), theirs.contains(id));
        }
        let mut listed: Vec<u128> = ours.iter().collect();
        listed.sort_unstable();
        let mut expected: Vec<u128> = theirs.into_iter().collect();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        ours.clear();
        assert!(ours.is_empty() && !ours.contains(&all[1]));
    }

    #[test]
    fn search_agrees_with_binary_search() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [0usize, 1, 7, 8, 9, 100, 1000] {
            // Uniform ids, sequential ids and a crowded range: good and bad guesses.
            let uniform: Vec<u128> = (0..n)
                .map(|_| (u128::from(next()) << 64) | u128::from(next()))
                .collect();
            let seq: Vec<u128> = (0..n as u128).map(|i| i * 3).collect();
            let crowded: Vec<u128> = (0..n as u128).map(|i| (u128::MAX - 5000) + i * 2).collect();
            for mut v in [uniform, seq, crowded] {
                v.sort_unstable();
                v.dedup();
                let mut probes: Vec<u128> = v.clone();
                probes.extend(v.iter().map(|x| x.wrapping_add(1)));
                probes.extend([0, 1, u128::MAX, u128::MAX / 2]);
                for p in probes {
                    assert_eq!(search(&v, p), v.binary_search(&p), "n={n} probe={p}");
                }
            }
        }
    }

    #[test]
    fn buckets_stay_sorted_after_merges() {
        let mut s = IdSet::new();
        s.extend(ids(600_000));
        assert_eq!(s.buckets.len(), 1 << (START_BITS + 2), "split twice");
        for (i, b) in s.buckets.iter().enumerate() {
            assert!(b.sorted.windows(2).all(|w| w[0] < w[1]));
            assert!(b.tail.len() < TAIL);
            // Every id sits in the bucket its hash names.
            assert!(
                b.sorted
                    .iter()
                    .chain(&b.tail)
                    .all(|id| s.bucket_of(*id) == i)
            );
        }
    }

    #[test]
    fn about_sixteen_bytes_an_id() {
        let n = 1_000_000;
        let mut s = IdSet::new();
        s.extend(ids(n));
        let per_id = s.heap_bytes() as f64 / n as f64;
        // 16 bytes of id with at most 1/8 spare, plus the tails and bucket headers.
        let fixed = s.buckets.len() * (TAIL * 16 + std::mem::size_of::<Bucket>());
        let bound = 16.0 * 1.125 + fixed as f64 / n as f64;
        assert!(per_id <= bound, "{per_id:.1} bytes an id, bound {bound:.1}");
        // A hash set of the same ids needs more than this (17 bytes a slot, 2^21 slots).
        let h: HashSet<u128> = ids(n).into_iter().collect();
        assert!(h.capacity() * 17 > s.heap_bytes());
    }
}
