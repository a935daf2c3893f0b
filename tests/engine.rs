//! The library tests: the engine driven through its API (and, where a test
//! checks what the binary makes of a store the library wrote, the binary),
//! most of them on the simulated file system (`stratum::sim`). One test
//! binary, so the crate is linked once; one module per harness:
//!
//! | module | what | run alone |
//! |---|---|---|
//! | `store` | round trips across reopen, rotation and compaction; ids never reused; torn tails; damaged indexes | `cargo test --release --test engine store::` |
//! | `compact` | selective compaction: what is merged, what survives, the plan | `… compact::` |
//! | `model_based` | random histories against the reference model (proptest, fixed seed) | `… model_based::` |
//! | `crashfs` | power loss at every mutating call of generated workloads | `… crashfs::` |
//! | `corruption` | every truncation and bit flip of a small store; hostile records | `… corruption::` |
//! | `fuzz_corpus` | the committed fuzz corpus through the fuzz targets' bodies | `… fuzz_corpus::` |
//! | `keys` | the key index: flat key lookups at 1,000 members, a key index that does not bind ignored and rebuilt, verify and repair of it | `… keys::` |
//! | `rules` | on-conflict, meta merge patch and selection as the library holds them, reads counted | `… rules::` |
//!
//! # Tiers
//! - Quick (default, CI): `cargo test --release --test engine` (about a
//!   minute on 2 cores): 20,000 crash images, 1,000 random histories on the
//!   simulated machine and 32 on disk, every truncation and bit flip of the
//!   small store.
//! - Long (by hand): `STRATUM_CRASH_IMAGES=2000000 STRATUM_CRASH_SEED=5000000
//!   cargo test --release --test engine crashfs:: -- --nocapture`, and
//!   `PROPTEST_RNG_SEED=$RANDOM PROPTEST_CASES=100000 cargo test --release
//!   --test engine model_based::` (a new seed: new histories). Each module's
//!   header names its knobs.
//!
//! `model` (tests/support/model.rs) is the reference model they share with
//! the fault harness; `run` (tests/support/run.rs) the one runner of the
//! binary. `corruption` installs this binary's global allocator,
//! which records the largest allocation per thread (and only that).

#[allow(dead_code)]
#[path = "support/model.rs"]
mod model;
#[allow(dead_code)]
#[path = "support/run.rs"]
mod run;

#[path = "engine/compact.rs"]
mod compact;
#[path = "engine/corruption.rs"]
mod corruption;
#[path = "engine/crashfs.rs"]
mod crashfs;
#[path = "engine/fuzz_corpus.rs"]
mod fuzz_corpus;
#[path = "engine/keys.rs"]
mod keys;
#[path = "engine/model_based.rs"]
mod model_based;
#[path = "engine/rules.rs"]
mod rules;
#[path = "engine/store.rs"]
mod store;
