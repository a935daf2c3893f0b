//! `with store.batch():` over the library's `Store::atomic`.
//!
//! `atomic` takes a closure that makes every write of the batch, but a
//! Python `with` block makes its calls one at a time, returning to Python in
//! between. So for the length of a batch the store moves to a worker thread
//! that runs `atomic` and, inside it, each call the handle sends it, until
//! it is told to commit or to roll back. Calls keep their order (one
//! channel), see the batch's own earlier writes, and return their results
//! at once, so a `create_doc` inside a batch hands out its id as outside.

use std::sync::mpsc;
use std::thread;

use stratum::Store;

use crate::errors::{Failure, guard};

/// One call to run on the worker: it reports its own result, and returns
/// false when it panicked (the batch is then abandoned).
type Job = Box<dyn FnOnce(&mut Store) -> bool + Send>;

enum Msg {
    Job(Job),
    Commit,
    Rollback,
}

/// A batch under way: the worker that owns the store until it ends.
pub(crate) struct Worker {
    tx: mpsc::Sender<Msg>,
    thread: thread::JoinHandle<Option<(Box<Store>, stratum::Result<()>)>>,
}

/// How a batch ended.
pub(crate) enum Ended {
    /// `atomic` returned: committed (`Ok`) or rolled back; the store is back.
    Store(Box<Store>, stratum::Result<()>),
    /// The worker died (a panic outside any call); the store was dropped
    /// with it, its lock released, the batch not committed.
    Lost(String),
}

impl Worker {
    /// Moves `store` to a new worker thread and begins the batch. When the
    /// thread cannot be started the store is handed back.
    pub(crate) fn start(store: Box<Store>) -> Result<Worker, (Box<Store>, std::io::Error)> {
        let (tx, rx) = mpsc::channel::<Msg>();
        // The store is sent after the thread has started, so that a failed
        // start leaves it with the caller.
        let (store_tx, store_rx) = mpsc::channel::<Box<Store>>();
        let spawned = thread::Builder::new()
            .name("stratum-batch".into())
            .spawn(move || {
                let mut store = store_rx.recv().ok()?;
                let result = store.atomic(|s| {
                    loop {
                        match rx.recv() {
                            Ok(Msg::Job(job)) => {
                                if !job(s) {
                                    return Err(stratum::Error::invalid(
                                        "the batch was abandoned after an internal error",
                                    ));
                                }
                            }
                            Ok(Msg::Commit) => return Ok(()),
                            // Told to roll back, or the handle is gone.
                            Ok(Msg::Rollback) | Err(_) => {
                                return Err(stratum::Error::invalid("batch rolled back"));
                            }
                        }
                    }
                });
                Some((store, result))
            });
        match spawned {
            Ok(thread) => {
                // The thread is waiting on this channel, so the send cannot
                // fail unless the thread is already gone, which `finish`
                // reports.
                let _ = store_tx.send(store);
                Ok(Worker { tx, thread })
            }
            Err(e) => Err((store, e)),
        }
    }

    /// Runs `op` inside the batch and waits for its result.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Store) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, Failure> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |s: &mut Store| {
            let r = guard(|| op(s));
            let fine = !matches!(r, Err(Failure::Panic(_)));
            let _ = reply_tx.send(r);
            fine
        });
        if self.tx.send(Msg::Job(job)).is_err() {
            return Err(Failure::Panic(
                "the batch's worker thread has stopped".into(),
            ));
        }
        reply_rx.recv().unwrap_or_else(|_| {
            Err(Failure::Panic(
                "the batch's worker thread has stopped".into(),
            ))
        })
    }

    /// Commits or rolls back, and takes the store back.
    pub(crate) fn finish(self, commit: bool) -> Ended {
        let _ = self
            .tx
            .send(if commit { Msg::Commit } else { Msg::Rollback });
        match self.thread.join() {
            Ok(Some((store, result))) => Ended::Store(store, result),
            Ok(None) => Ended::Lost("the batch's worker thread never received the store".into()),
            Err(p) => Ended::Lost(crate::errors::panic_text(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratum::{DocId, NewDoc, Options};

    fn store(dir: &std::path::Path) -> Box<Store> {
        let mut o = Options::new(dir);
        o.sync = false;
        Box::new(Store::open(o).unwrap())
    }

    fn new_doc(s: &mut Store) -> Result<u64, Failure> {
        Ok(s.create_doc(&NewDoc::default())?.0)
    }

    #[test]
    fn calls_return_at_once_and_land_on_commit() {
        let tmp = std::env::temp_dir().join(format!("stratum-py-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let w = Worker::start(store(&tmp)).unwrap_or_else(|_| panic!("no thread"));
        assert_eq!(w.run(new_doc).ok(), Some(1));
        assert_eq!(w.run(new_doc).ok(), Some(2));
        // A failed call leaves the batch going.
        let missing = w.run(|s| Ok(s.get(DocId(9))?));
        assert!(matches!(
            missing,
            Err(Failure::Lib(stratum::Error::DocNotFound(_)))
        ));
        let Ended::Store(s, r) = w.finish(true) else {
            panic!("lost")
        };
        assert!(r.is_ok());
        assert!(s.get(DocId(2)).is_ok());
        drop(s);
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_panic_in_a_call_abandons_the_batch() {
        let tmp = std::env::temp_dir().join(format!("stratum-py-panic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let w = Worker::start(store(&tmp)).unwrap_or_else(|_| panic!("no thread"));
        assert_eq!(w.run(new_doc).ok(), Some(1));
        let r: Result<(), Failure> = w.run(|_| panic!("inside"));
        assert!(matches!(r, Err(Failure::Panic(m)) if m == "inside"));
        // The worker has rolled back and stopped taking calls.
        assert!(matches!(w.run(new_doc), Err(Failure::Panic(_))));
        let Ended::Store(s, r) = w.finish(true) else {
            panic!("lost")
        };
        assert!(r.is_err());
        drop(s);
        let s = store(&tmp);
        assert!(matches!(
            s.get(DocId(1)),
            Err(stratum::Error::DocNotFound(_))
        ));
        drop(s);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
