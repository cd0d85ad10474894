//! A writer that hands full buffers to a thread of its own, so the kernel's copy of
//! the output overlaps the decoding instead of following it. Memory stays bounded: at
//! most `DEPTH` buffers of `BUF` bytes are in flight.

use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

const BUF: usize = 1 << 20;
const DEPTH: usize = 4;

pub struct Writer<W: Write + Send + 'static> {
    buf: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    /// Empty buffers coming back for reuse.
    back: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
    /// The thread's error, once seen (io::Error is not Clone).
    failed: Option<(io::ErrorKind, String)>,
}

impl<W: Write + Send + 'static> Writer<W> {
    pub fn new(mut out: W) -> Writer<W> {
        let (tx, rx) = sync_channel::<Vec<u8>>(DEPTH);
        let (back_tx, back) = sync_channel::<Vec<u8>>(DEPTH + 2);
        let thread = std::thread::spawn(move || -> io::Result<W> {
            for mut b in rx {
                out.write_all(&b)?;
                b.clear();
                let _ = back_tx.try_send(b);
            }
            out.flush()?;
            Ok(out)
        });
        Writer {
            buf: Vec::with_capacity(BUF),
            tx: Some(tx),
            back,
            thread: Some(thread),
            failed: None,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if let Some((kind, msg)) = &self.failed {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let fresh = self
            .back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUF));
        let full = std::mem::replace(&mut self.buf, fresh);
        if let Some(tx) = &self.tx
            && tx.send(full).is_ok()
        {
            return Ok(());
        }
        // The thread stopped on an error: fetch it, so that the user reads "No space
        // left on device" rather than a word about threads.
        self.tx = None;
        let e = match self.thread.take().map(|t| t.join()) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => io::Error::other("output thread panicked"),
            _ => io::Error::other("output thread stopped"),
        };
        self.failed = Some((e.kind(), e.to_string()));
        Err(e)
    }

    /// Writes what is left, waits for the thread and returns the inner writer (or the
    /// first write error).
    pub fn finish(mut self) -> io::Result<W> {
        let sent = self.send();
        self.tx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("output thread panicked"))),
            // `send` already took the thread and kept its error.
            None => Err(sent
                .err()
                .unwrap_or_else(|| io::Error::other("output thread stopped"))),
        }
    }
}

impl<W: Write + Send + 'static> Write for Writer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > BUF {
            self.send()?;
        }
        if data.len() >= BUF {
            // Large writes go as they are.
            self.buf.extend_from_slice(data);
            self.send()?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    /// Hands the buffer over; the data reaches the inner writer in order, later.
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl<W: Write + Send + 'static> Drop for Writer<W> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
