//! CRC-32 (the IEEE polynomial, as zlib and crc32fast compute it): every
//! checksum the store writes and checks goes through here.
//!
//! crc32fast chooses its carry-less-multiply path by probing the CPU the
//! first time a process hashes anything, and in a virtual machine each
//! `cpuid` of that probe traps to the hypervisor: about 60 µs, 5% of a
//! whole `get` process on the benchmark's machine (`perf record` of a static
//! build). A command that serves one document hashes a few kilobytes, which
//! a slice-by-8 table does in a few microseconds. So the table serves until
//! the process has hashed [`TABLE_BUDGET`] bytes, and crc32fast (probe
//! included) everything after: the probe is paid by work that repays it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes the table hashes in one process before crc32fast takes over:
/// about where the table's extra cost (~0.3 ns a byte) reaches the probe's.
const TABLE_BUDGET: usize = 256 * 1024;

/// Bytes hashed by the table so far in this process.
static TABLE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The CRC-32 of `bytes`.
#[must_use]
pub fn crc32(bytes: &[u8]) -> u32 {
    update(0, bytes)
}

/// The CRC-32 of what `crc` is the CRC of, followed by `bytes`.
#[must_use]
pub fn update(crc: u32, bytes: &[u8]) -> u32 {
    let before = TABLE_BYTES.load(Ordering::Relaxed);
    if table_serves(before, bytes.len()) {
        TABLE_BYTES.fetch_add(bytes.len(), Ordering::Relaxed);
        return by_table(crc, bytes);
    }
    let mut h = crc32fast::Hasher::new_with_initial(crc);
    h.update(bytes);
    h.finalize()
}

/// Whether the table hashes `len` more bytes after `before`.
fn table_serves(before: usize, len: usize) -> bool {
    before.saturating_add(len) <= TABLE_BUDGET
}

/// `TABLES[k][b]`: the CRC register's change for byte `b` followed by `k`
/// zero bytes, so eight bytes are folded in with eight independent lookups.
static TABLES: [[u32; 256]; 8] = tables();

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

fn by_table(crc: u32, bytes: &[u8]) -> u32 {
    let t = &TABLES;
    let byte = |x: u32, shift: u32| ((x >> shift) & 0xFF) as usize;
    let mut c = !crc;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ c;
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        c = t[7][byte(lo, 0)]
            ^ t[6][byte(lo, 8)]
            ^ t[5][byte(lo, 16)]
            ^ t[4][byte(lo, 24)]
            ^ t[3][byte(hi, 0)]
            ^ t[2][byte(hi, 8)]
            ^ t[1][byte(hi, 16)]
            ^ t[0][byte(hi, 24)];
    }
    for &b in words.remainder() {
        c = t[0][byte(c ^ u32::from(b), 0)] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_table_computes_what_crc32fast_does() {
        assert_eq!(by_table(0, b"123456789"), 0xCBF4_3926);
        for len in (0..80).chain([255, 256, 4095, 4096, 4097, 70_000]) {
            let b = bytes(len, len as u64 + 11);
            for start in [0, 1, 3, 7].into_iter().filter(|&s| s <= len) {
                let part = &b[start..];
                assert_eq!(
                    by_table(0, part),
                    crc32fast::hash(part),
                    "len {len} from {start}"
                );
                let (head, tail) = part.split_at(part.len() / 3);
                assert_eq!(by_table(by_table(0, head), tail), crc32fast::hash(part));
            }
        }
    }

    #[test]
    fn either_path_continues_the_other() {
        let b = bytes(10_000, 5);
        let (head, tail) = b.split_at(4_321);
        let mut h = crc32fast::Hasher::new_with_initial(by_table(0, head));
        h.update(tail);
        assert_eq!(h.finalize(), crc32fast::hash(&b));
        assert_eq!(by_table(crc32fast::hash(head), tail), crc32fast::hash(&b));
        assert_eq!(update(update(0, head), tail), crc32(&b));
    }

    #[test]
    fn the_table_serves_until_its_budget_is_spent() {
        assert!(table_serves(0, 4096));
        assert!(table_serves(TABLE_BUDGET - 10, 10));
        assert!(!table_serves(TABLE_BUDGET - 10, 11));
        assert!(!table_serves(0, TABLE_BUDGET + 1));
        assert!(!table_serves(usize::MAX, 1));
    }
}
