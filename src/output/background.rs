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
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let fresh = self
            .back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUF));
        let full = std::mem::replace(&mut self.buf, fresh);
        match &self.tx {
            Some(tx) if tx.send(full).is_ok() => Ok(()),
            // The thread stopped: its error comes out of `finish`.
            _ => Err(io::Error::other("output thread stopped")),
        }
    }

    /// Writes what is left, waits for the thread and returns the inner writer (or the
    /// first write error).
    pub fn finish(mut self) -> io::Result<W> {
        let sent = self.send();
        self.tx = None;
        let joined = match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("output thread panicked"))),
            None => Err(io::Error::other("output already finished")),
        };
        let w = joined?;
        sent?;
        Ok(w)
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
        for _ in 0..20 {
            if w.write_all(&[0u8; 500_000]).is_err() {
                break;
            }
        }
        let e = w.finish().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("disk full") || e.contains("stopped"), "{e}");
    }
}
