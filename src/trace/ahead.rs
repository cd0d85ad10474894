//! The CTE scan on a thread of its own: reading, deframing and CTE synchronisation
//! (`Scanner`) run ahead of whoever turns the CTEs into packets, so that on a machine
//! with two cores the two halves of the decoding overlap. The CTEs come in batches
//! with the issues the scan reported, in the order a single thread would have seen
//! them; memory stays bounded (a few batches in flight).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;

use super::cte::CteHeader;
use super::report::Issue;
use super::scan::{Cte, Scanner};

/// CTE bytes per batch (a batch may exceed it by one CTE), CTEs per batch at most, and
/// issues after which a batch goes (it may exceed that by what one CTE's search found,
/// at most `MAX_ISSUES` kept): a damaged stretch cannot pile up issues in memory.
const BATCH_BYTES: usize = 256 << 10;
const BATCH_CTES: usize = 2048;
const BATCH_ISSUES: usize = 1024;
/// Batches queued between the threads.
const DEPTH: usize = 4;

/// What the scan found, in file order.
pub enum Found<'a> {
    Cte(Cte<'a>),
    /// A problem the scan reported (before the CTE that follows it).
    Issue(Issue),
}

struct Slot {
    offset: u64,
    record: u64,
    header: CteHeader,
    start: usize,
    len: usize,
}

#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    ctes: Vec<Slot>,
    /// Issues with the number of this batch's CTEs found before each.
    issues: Vec<(usize, Issue)>,
    /// File bytes read once the batch was full.
    bytes_read: u64,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ctes.clear();
        self.issues.clear();
    }

    /// Hands everything in order to `each`; false as soon as `each` does.
    fn deliver(&mut self, each: &mut impl FnMut(Found<'_>, u64) -> bool) -> bool {
        let mut issues = self.issues.drain(..).peekable();
        for (i, s) in self.ctes.iter().enumerate() {
            while let Some((_, issue)) = issues.next_if(|(at, _)| *at <= i) {
                if !each(Found::Issue(issue), self.bytes_read) {
                    return false;
                }
            }
            let cte = Cte {
                offset: s.offset,
                record: s.record,
                header: s.header,
                bytes: &self.bytes[s.start..s.start + s.len],
            };
            if !each(Found::Cte(cte), self.bytes_read) {
                return false;
            }
        }
        issues.all(|(_, issue)| each(Found::Issue(issue), self.bytes_read))
    }
}

/// Runs `scanner` to the end of its file on a thread of its own, handing what it finds
/// to `each` on this thread, with the file bytes read so far, until `each` returns
/// false. The scan's issues are taken out of the scanner's report as they come (the
/// caller keeps them where it wants them); its counters stay there. A read error ends
/// the run after everything found before it was handed over.
pub fn scan_ahead<R: Read + Send>(
    scanner: &mut Scanner<R>,
    mut each: impl FnMut(Found<'_>, u64) -> bool,
) -> io::Result<()> {
    // Set when the consumer stops early: the scan stops at its next CTE instead of
    // reading on until its queue is found closed.
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Batch>(DEPTH);
        let (back_tx, back_rx) = sync_channel::<Batch>(DEPTH + 2);
        let stop = &stop;
        let scan = scope.spawn(move || -> io::Result<()> {
            loop {
                let mut b = back_rx.try_recv().unwrap_or_default();
                b.clear();
                let mut end = Ok(false);
                while b.bytes.len() < BATCH_BYTES
                    && b.ctes.len() < BATCH_CTES
                    && b.issues.len() < BATCH_ISSUES
                {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let (cte, report) = match scanner.next_split() {
                        Ok(found) => found,
                        Err(e) => {
                            end = Err(e);
                            break;
                        }
                    };
                    if !report.issues.is_empty() {
                        let n = b.ctes.len();
                        b.issues.extend(report.issues.drain(..).map(|i| (n, i)));
                    }
                    let Some(cte) = cte else {
                        end = Ok(true);
                        break;
                    };
                    b.ctes.push(Slot {
                        offset: cte.offset,
                        record: cte.record,
                        header: cte.header,
                        start: b.bytes.len(),
                        len: cte.bytes.len(),
                    });
                    b.bytes.extend_from_slice(cte.bytes);
                }
                b.bytes_read = scanner.report().bytes_read;
                // A closed queue: the consumer stopped early, nothing more is wanted.
                if tx.send(b).is_err() {
                    return Ok(());
                }
                if end? {
                    return Ok(());
                }
            }
        });
        for mut b in rx.iter() {
            if !b.deliver(&mut each) {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            // Back for reuse; dropped when the scan has enough.
            let _ = back_tx.try_send(b);
        }
        drop(rx);
        scan.join()
            .unwrap_or_else(|_| Err(io::Error::other("scan thread panicked")))
    })
}
