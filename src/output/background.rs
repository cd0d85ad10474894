//! A writer that hands full buffers to a thread of its own, so the kernel's copy of
//! the output overlaps the decoding instead of following it. Memory stays bounded: at
//! most `DEPTH` buffers of `BUF` bytes are in flight.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

const BUF: usize = 1 << 20;
const DEPTH: usize = 4;

/// A thread fed batches through a bounded queue (`depth` batches in flight at most),
/// the emptied batches coming back for reuse. Its result, or its first error, comes
/// out of `send` or `finish`.
pub struct Worker<T: Send + 'static, R: Send + 'static> {
    tx: Option<SyncSender<T>>,
    back: Receiver<T>,
    thread: Option<JoinHandle<io::Result<R>>>,
    /// The thread's error, once seen (io::Error is not Clone).
    failed: Option<(io::ErrorKind, String)>,
    /// What the thread does, for the message when it panics.
    what: &'static str,
}

impl<T: Send + 'static, R: Send + 'static> Worker<T, R> {
    /// Runs `body` on a thread of its own: it receives the batches and may hand each
    /// back (a full return queue drops it).
    pub fn spawn(
        depth: usize,
        what: &'static str,
        body: impl FnOnce(Receiver<T>, SyncSender<T>) -> io::Result<R> + Send + 'static,
    ) -> Worker<T, R> {
        let (tx, rx) = sync_channel::<T>(depth);
        let (back_tx, back) = sync_channel::<T>(depth + 2);
        Worker {
            tx: Some(tx),
            back,
            thread: Some(std::thread::spawn(move || body(rx, back_tx))),
            failed: None,
            what,
        }
    }

    /// A batch handed back, if one is waiting.
    pub fn recycled(&self) -> Option<T> {
        self.back.try_recv().ok()
    }

    pub fn send(&mut self, batch: T) -> io::Result<()> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        if let Some(tx) = &self.tx
            && tx.send(batch).is_ok()
        {
            return Ok(());
        }
        // The thread stopped on an error: fetch it, so that the user reads "No space
        // left on device" rather than a word about threads.
        self.tx = None;
        let e = match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other(format!("{} thread panicked", self.what)),
            _ => io::Error::other(format!("{} thread stopped", self.what)),
        };
        self.failed = Some((e.kind(), e.to_string()));
        Err(e)
    }

    /// Ends the queue, waits for the thread and returns its result (or the first
    /// error).
    pub fn finish(mut self) -> io::Result<R> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(io::Error::other(format!("{} thread panicked", self.what)))
            }),
            // `send` already took the thread and kept its error.
            None => Err(match &self.failed {
                Some((kind, msg)) => io::Error::new(*kind, msg.clone()),
                None => io::Error::other(format!("{} thread stopped", self.what)),
            }),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Drop for Worker<T, R> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes through a `Worker`: full buffers go to the thread, which writes them to the
/// inner writer.
pub struct Writer<W: Write + Send + 'static> {
    buf: Vec<u8>,
    worker: Worker<Vec<u8>, W>,
}

impl<W: Write + Send + 'static> Writer<W> {
    pub fn new(mut out: W) -> Writer<W> {
        let worker = Worker::spawn(
            DEPTH,
            "output",
            move |rx: Receiver<Vec<u8>>, back: SyncSender<Vec<u8>>| {
                for mut b in rx {
                    out.write_all(&b)?;
                    b.clear();
                    let _ = back.try_send(b);
                }
                out.flush()?;
                Ok(out)
            },
        );
        Writer {
            buf: Vec::with_capacity(BUF),
            worker,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let fresh = self
            .worker
            .recycled()
            .unwrap_or_else(|| Vec::with_capacity(BUF));
        let full = std::mem::replace(&mut self.buf, fresh);
        self.worker.send(full)
    }

    /// Writes what is left, waits for the thread and returns the inner writer (or the
    /// first write error).
    pub fn finish(mut self) -> io::Result<W> {
        let sent = self.send();
        let done = self.worker.finish();
        sent.and(done)
    }
}

impl<W: Write + Send + 'static> Write for Writer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    /// Takes all of `data` at once (never a short write): the pcapng writer's few
    /// small writes per packet then cost a copy each and nothing more.
    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buf.len() + data.len() > BUF {
            self.send()?;
        }
        self.buf.extend_from_slice(data);
        if data.len() >= BUF {
            // Large writes go as they are.
            self.send()?;
        }
        Ok(())
    }

    /// Hands the buffer over; the data reaches the inner writer in order, later.
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_complete() {
        let mut w = Writer::new(Vec::new());
        let mut want = Vec::new();
        for i in 0..5000u32 {
            let chunk: Vec<u8> = (0..(i % 700)).map(|j| (i + j) as u8).collect();
            w.write_all(&chunk).ok();
            want.extend(chunk);
        }
        w.write_all(&vec![7u8; 3 * BUF]).ok();
        want.extend(vec![7u8; 3 * BUF]);
        let got = w.finish().unwrap_or_default();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }

    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_comes_out_of_finish() {
        let mut w = Writer::new(Failing);
        let mut first = None;
        for _ in 0..20 {
            if let Err(e) = w.write_all(&[0u8; 500_000]) {
                first = Some(e.to_string());
                break;
            }
        }
        // Writes after the failure say what failed, too.
        assert!(
            first.as_deref().is_none_or(|e| e == "disk full"),
            "{first:?}"
        );
        let e = w.finish().err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(e, "disk full", "the thread's own error reaches the caller");
    }
}
