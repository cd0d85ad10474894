//! Finds CTEs in the record stream: learns the writer-header length, strips headers,
//! joins CTEs that straddle records, treats a zero length as end of buffer and
//! resynchronises after damage (formats/writer-header.md, formats/cte.md).
//! Flow: logical records (framing) -> CTEs (this) -> packet assembly.

use std::io::{self, Cursor, Read};

use super::cte::{self, CteHeader, HEADER_LEN, MIN_LEN};
use super::ebcdic::CodePage;
use super::framing::{self, Deframer, Framing};
use super::pthdr::PtHdr;
use super::report::{IssueKind, Report};

/// How much of the file is looked at before decoding to decide framing and layout.
const PREFIX: usize = 4 << 20;
/// Records used to learn the writer-header length.
const SAMPLE_RECORDS: usize = 64;
/// Largest writer header considered.
pub const MAX_HEADER: usize = 4096;
/// Header lengths scored when learning (the best supported ones).
const MAX_CANDIDATES: usize = 32;
/// Bytes a resynchronisation searches before it accounts for them and moves on.
const RESYNC_WINDOW: usize = 1 << 20;
/// Largest CTE (its length is 16 bits).
const MAX_CTE: usize = 65_535;

/// User overrides for the layout.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub framing: Option<Framing>,
    pub header_len: Option<usize>,
}

/// What was decided about the file before decoding it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub framing: Option<Framing>,
    pub framing_forced: bool,
    /// Writer header length stripped from each record.
    pub header_len: usize,
    pub header_forced: bool,
    /// Raw files cut into records of this length (learned).
    pub fixed_record: Option<usize>,
    /// Component and system named in the writer header, when found there.
    pub component: Option<String>,
    pub system: Option<String>,
    /// Breaks in the CTE chains of the sample records under the chosen header length
    /// (damaged records the learning looked past).
    pub sample_errors: u64,
}

/// One CTE as found in the stream: its bytes (header, record, trailing length).
#[derive(Debug)]
pub struct Cte<'a> {
    /// File offset of the first byte (of its first piece when it straddles records).
    pub offset: u64,
    pub record: u64,
    pub header: CteHeader,
    pub bytes: &'a [u8],
}

impl Cte<'_> {
    /// PTH_len, the length of the record's PTHDR (at the CTE's data offset).
    pub fn pth_len(&self) -> Option<usize> {
        let off = self.header.data_offset as usize;
        self.bytes.get(off..off + 2).map(|b| be16(b, 0))
    }

    /// Reads the record's PTHDR into `h` (reusing it, see `PtHdr::read_into`); false
    /// when its bytes hold none (a lost-record notice, or a PTH_len the header fields
    /// cannot be read from).
    pub fn pthdr_into(&self, h: &mut PtHdr) -> bool {
        if self.header.format_id.is_lost_notice() {
            return false;
        }
        let off = self.header.data_offset as usize;
        // The CTE check kept off + PTH_len + 2 within the CTE.
        let Some(b) = self.pth_len().and_then(|n| self.bytes.get(off..off + n)) else {
            return false;
        };
        // What the fast reader leaves to the binrw definition (see `PtHdr::parse`).
        h.read_into(b) || PtHdr::read_binrw(b).map(|parsed| *h = parsed).is_ok()
    }
}

/// Where a run of stream bytes came from.
#[derive(Clone, Copy, Debug)]
struct Seg {
    stream: u64,
    file: u64,
    record: u64,
    /// First stream byte after a writer header (a record start).
    starts_record: bool,
}

pub struct Scanner<R> {
    deframer: Deframer<io::Chain<Cursor<Vec<u8>>, R>>,
    layout: Layout,
    /// Stream bytes (headers stripped); `win[pos..]` is not consumed yet.
    win: Vec<u8>,
    pos: usize,
    /// Stream offset of win[0].
    base: u64,
    segs: std::collections::VecDeque<Seg>,
    /// Where in `segs` the last `locate` found its run (a hint, checked before use).
    last_seg: std::cell::Cell<usize>,
    /// Bytes of the current record's header still to strip (a header can be split
    /// over several pieces of a spanned record).
    header_left: usize,
    eof: bool,
    /// Raw stream without boundaries: length of the header seen before the first CTE.
    raw_header: Option<usize>,
    /// The start of a raw stream has been dealt with.
    started: bool,
    /// A resynchronisation that gave up the window and goes on at `pos` (reason,
    /// whether it follows an end-of-buffer mark).
    pending: Option<(String, bool)>,
    report: Report,
}

fn be16(b: &[u8], at: usize) -> usize {
    u16::from_be_bytes([b[at], b[at + 1]]) as usize
}

/// Scores a header length over sample records. First criterion: records whose chain
/// starts validly where it should (at the header's end, or after the CTE carried over
/// from the previous record), minus those where it does not; a wrong length rarely
/// lands on CTEs in most records, the true one does even when some are damaged.
/// Second: valid CTEs minus 4 per break in a chain. After a break the chain is searched for further on in the same record; if none is
/// found, the next record's first CTE is unknown (it may continue a CTE we could not
/// follow), so that record is searched too, not penalised: one damaged CTE costs one
/// error. See formats/writer-header.md.
fn score(records: &[Vec<u8>], h: usize) -> (i64, u64) {
    let (mut valid, mut errors) = (0i64, 0u64);
    let mut carry = 0usize;
    // High byte of a CTE length that straddles into the next record.
    let mut high: Option<u8> = None;
    let mut lost = false;
    let (mut starts_ok, mut starts_bad) = (0i64, 0i64);
    for r in records {
        let body = r.get(h..).unwrap_or(&[]);
        let mut p = 0;
        // The first CTE checked in this record decides whether its chain started right;
        // not judged for records searched after a break.
        let mut first = !lost;
        if lost {
            let Some(q) = (0..body.len()).find(|&q| whole_or_straddling(body, q)) else {
                continue;
            };
            (p, carry, high, lost) = (q, 0, None, false);
        }
        if let Some(hi) = high.take()
            && let Some(&lo) = body.first()
            // A zero byte left over is fill when a CTE starts this record.
            && !(hi == 0 && whole_or_straddling(body, 0))
        {
            let l = u16::from_be_bytes([hi, lo]) as usize;
            if l < MIN_LEN {
                errors += 1;
                lost = true;
                continue;
            }
            carry = l - 1;
        }
        if carry > 0 {
            if carry >= body.len() {
                carry -= body.len();
                continue;
            }
            p = carry;
            carry = 0;
        }
        loop {
            if p + 1 == body.len() {
                // The first byte of a length that straddles, or fill: the next record
                // decides.
                high = Some(body[p]);
                break;
            }
            if p + 2 > body.len() {
                break;
            }
            let l = be16(body, p);
            if l == 0 {
                break;
            }
            if p + HEADER_LEN + 2 > body.len() {
                if l < MIN_LEN {
                    errors += 1;
                    lost = true;
                } else {
                    carry = l - (body.len() - p);
                }
                break;
            }
            let ok = whole_or_straddling(body, p);
            if first {
                first = false;
                if ok {
                    starts_ok += 1;
                } else {
                    starts_bad += 1;
                }
            }
            if !ok {
                // Like the decoder, resynchronise inside the record: a damaged CTE costs
                // one error, not the rest of its record.
                errors += 1;
                match (p + 1..body.len()).find(|&q| whole_or_straddling(body, q)) {
                    Some(q) => {
                        p = q;
                        continue;
                    }
                    None => {
                        lost = true;
                        break;
                    }
                }
            }
            valid += 1;
            if p + l > body.len() {
                carry = l - (body.len() - p);
                break;
            }
            p += l;
        }
    }
    (
        (starts_ok - starts_bad) * 1_000_000 + valid - 4 * errors as i64,
        errors,
    )
}

/// A CTE head is valid at `p` and, if the CTE ends inside `body`, its trailer matches.
fn whole_or_straddling(body: &[u8], p: usize) -> bool {
    if p + HEADER_LEN + 2 > body.len() || cte::check_head(&body[p..]).is_err() {
        return false;
    }
    let l = be16(body, p);
    p + l > body.len() || be16(body, p + l - 2) == l
}

/// Header lengths implied by straddling CTEs. A chain found anywhere in a record (file
/// coordinates, whatever the header) tells how many bytes its last CTE still needs; in
/// the next record those bytes follow the header, so a valid CTE right after them at
/// offset q means a header of q minus that carry. This finds the header even when the
/// first record's first CTE is damaged and every other record starts mid-CTE.
fn carry_candidates(records: &[Vec<u8>]) -> Vec<usize> {
    let mut out = Vec::new();
    for pair in records.windows(2) {
        let (r, next) = (&pair[0], &pair[1]);
        let Some(mut p) = (0..r.len()).find(|&q| whole_or_straddling(r, q)) else {
            continue;
        };
        let carry = loop {
            let l = be16(r, p);
            if l < MIN_LEN || !whole_or_straddling(r, p) {
                break None;
            }
            if p + l > r.len() {
                break Some(l - (r.len() - p));
            }
            p += l;
            if p + HEADER_LEN + 2 > r.len() {
                break None;
            }
        };
        let Some(c) = carry else { continue };
        if let Some(q) =
            (c..next.len().min(c + MAX_HEADER + 1)).find(|&q| whole_or_straddling(next, q))
        {
            out.push(q - c);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Best header length for the sample: highest score, the smallest length on ties.
fn learn_header(records: &[Vec<u8>]) -> (usize, i64, u64) {
    // The longest record bounds the search: a short last record (a cut file, a salvaged
    // piece) must not hide the true length.
    let max_len = records.iter().map(Vec::len).max().unwrap_or(0);
    // A header that left less than a quarter of a record for trace data would make no
    // sense for a writer; such candidates only fit by chance (a CTE that happens to
    // start near the end of a record).
    let top = MAX_HEADER
        .min(max_len.saturating_sub(2))
        .min(max_len * 3 / 4);
    let mut best = (0usize, i64::MIN, 0u64);
    // Candidates: offsets where some sample record shows a CTE head, or that a CTE
    // straddling into a record implies. Only the best supported few are scored, so
    // hostile input with heads planted everywhere cannot make opening a file slow.
    let from_carries = carry_candidates(records);
    let mut candidates: Vec<(usize, usize)> = (0..=top)
        .map(|h| {
            let heads = records
                .iter()
                .filter(|r| r.len() >= h + HEADER_LEN + 2 && cte::check_head(&r[h..]).is_ok())
                .count();
            (h, heads + from_carries.iter().filter(|&&c| c == h).count())
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    candidates.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    candidates.truncate(MAX_CANDIDATES);
    candidates.sort_unstable();
    for (h, _) in candidates {
        let (s, e) = score(records, h);
        if s > best.1 {
            best = (h, s, e);
        }
    }
    if best.1 == i64::MIN {
        best = (0, 0, 0);
    }
    best
}

/// Looks for the writer header's component name (EBCDIC) and the system after it.
fn header_names(header: &[u8]) -> (Option<String>, Option<String>) {
    const NAMES: [(&[u8; 8], &str); 2] = [
        (b"\xE2\xE8\xE2\xE3\xC3\xD7\xC4\xC1", "SYSTCPDA"),
        (b"\xE2\xE8\xE2\xE3\xC3\xD7\xD6\xE3", "SYSTCPOT"),
    ];
    for (pat, name) in NAMES {
        if let Some(at) = header.windows(8).position(|w| w == pat) {
            let sys = header.get(at + 8..at + 16).and_then(|b| {
                let s = CodePage::Cp037.decode_name(b);
                (!s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "@#$ ".contains(c)))
                .then_some(s)
            });
            return (Some(name.to_string()), sys);
        }
    }
    (None, None)
}

/// Raw files: the first 8 bytes found again at a fixed distance give the record length.
fn fixed_record_len(prefix: &[u8]) -> Option<usize> {
    if prefix.len() < 64 {
        return None;
    }
    let sig = &prefix[..8];
    if sig.iter().all(|&b| b == 0) || cte::check_head(&prefix[..HEADER_LEN + 2]).is_ok() {
        return None;
    }
    let r = prefix[1..].windows(8).position(|w| w == sig)? + 1;
    if r < MIN_LEN {
        return None;
    }
    let mut k = r;
    while k + 8 <= prefix.len() {
        if &prefix[k..k + 8] != sig {
            return None;
        }
        k += r;
    }
    Some(r)
}

/// Cuts the prefix into logical records (joined spanned segments) for learning.
fn sample(prefix: &[u8], framing: Framing, fixed: Option<usize>) -> Vec<Vec<u8>> {
    let mut d = Deframer::new(prefix, framing, fixed);
    let mut scratch = Report::default();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    while out.len() <= SAMPLE_RECORDS {
        buf.clear();
        match d.next_into(&mut buf, &mut scratch) {
            Ok(Some(p)) if p.starts_record || out.is_empty() => out.push(buf.clone()),
            Ok(Some(_)) => {
                if let Some(last) = out.last_mut() {
                    last.extend_from_slice(&buf);
                }
            }
            _ => break,
        }
    }
    out
}

impl<R: Read> Scanner<R> {
    /// Reads a prefix of `src` to decide framing and header length, then is ready to
    /// return CTEs from the start of the file.
    pub fn open(mut src: R, opts: &Options) -> io::Result<Scanner<R>> {
        let mut prefix = Vec::with_capacity(PREFIX);
        (&mut src).take(PREFIX as u64).read_to_end(&mut prefix)?;
        let whole = prefix.len() < PREFIX;
        let framing = opts
            .framing
            .unwrap_or_else(|| framing::detect(&prefix, whole));
        let mut layout = Layout {
            framing: Some(framing),
            framing_forced: opts.framing.is_some(),
            header_forced: opts.header_len.is_some(),
            ..Layout::default()
        };
        if framing == Framing::Raw {
            layout.fixed_record = fixed_record_len(&prefix);
        }
        let boundaries = framing != Framing::Raw || layout.fixed_record.is_some();
        if boundaries {
            let recs = sample(&prefix, framing, layout.fixed_record);
            let (h, _, errors) = match opts.header_len {
                Some(h) => (h, 0, score(&recs, h).1),
                None => learn_header(&recs),
            };
            layout.header_len = h;
            layout.sample_errors = errors;
            if let Some(first) = recs.first() {
                (layout.component, layout.system) = header_names(&first[..h.min(first.len())]);
            }
        } else if let Some(h) = opts.header_len {
            layout.header_len = h;
        }
        let src = Cursor::new(prefix).chain(src);
        Ok(Scanner {
            deframer: Deframer::new(src, framing, layout.fixed_record),
            header_left: 0,
            raw_header: (!boundaries && opts.header_len.is_some()).then_some(layout.header_len),
            layout,
            started: false,
            pending: None,
            win: Vec::with_capacity(2 << 20),
            pos: 0,
            base: 0,
            segs: Default::default(),
            last_seg: Default::default(),
            eof: false,
            report: Report::default(),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    pub fn report_mut(&mut self) -> &mut Report {
        &mut self.report
    }

    pub fn into_report(self) -> Report {
        self.report.finished()
    }

    fn boundaries(&self) -> bool {
        self.layout.framing != Some(Framing::Raw) || self.layout.fixed_record.is_some()
    }

    /// Pulls one more piece from the deframer into the window. False at end of file.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let boundaries = self.boundaries();
        let Some((piece, mut data)) = self.deframer.next_piece(&mut self.report)? else {
            self.eof = true;
            self.report.bytes_read = self.deframer.consumed();
            return Ok(false);
        };
        // The piece is the last thing the deframer consumed.
        self.report.bytes_read = piece.offset + piece.len as u64;
        let mut file = piece.offset;
        if piece.starts_record {
            self.report.records += 1;
            self.header_left = if boundaries {
                self.layout.header_len
            } else {
                0
            };
            // Salvaged bytes count as a record with a header only if a CTE (or an
            // end-of-buffer mark) follows it; otherwise they are all left to the CTE
            // search, so garbage is never passed off as writer header bytes.
            let h = self.header_left;
            if piece.salvaged
                && h > 0
                && !data
                    .get(h..h + HEADER_LEN + 2)
                    .is_some_and(|b| cte::check_head(b).is_ok() || b[..2] == [0, 0])
            {
                self.header_left = 0;
            }
        } else if self.report.records == 0 {
            self.report.records = 1;
        }
        let strip = self.header_left.min(data.len());
        if strip > 0 {
            self.report.header_bytes += strip as u64;
            self.header_left -= strip;
            data = &data[strip..];
            file += strip as u64;
        }
        let stream = self.base + self.win.len() as u64;
        self.segs.push_back(Seg {
            stream,
            file,
            record: piece.record,
            starts_record: piece.starts_record && boundaries,
        });
        self.win.extend_from_slice(data);
        Ok(true)
    }

    /// Drops consumed bytes. Only called where no window index is held.
    fn compact(&mut self) {
        if self.pos > (1 << 20) && self.pos * 2 > self.win.len() {
            self.win.drain(..self.pos);
            self.base += self.pos as u64;
            self.pos = 0;
            let cut = self.base;
            while self.segs.len() > 1 && self.segs[1].stream <= cut {
                self.segs.pop_front();
            }
        }
    }

    /// Makes `n` unconsumed bytes available; false if the file ends first.
    fn want(&mut self, n: usize) -> io::Result<bool> {
        while self.win.len() - self.pos < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// File offset and record number of a stream position.
    fn locate(&self, stream: u64) -> (u64, u64) {
        // Nearly always the run of the CTE before: try it first.
        let h = self.last_seg.get();
        let i = match (self.segs.get(h), self.segs.get(h + 1)) {
            (Some(s), next) if s.stream <= stream && next.is_none_or(|n| n.stream > stream) => {
                h + 1
            }
            _ => {
                let i = self.segs.partition_point(|s| s.stream <= stream);
                self.last_seg.set(i.saturating_sub(1));
                i
            }
        };
        match self.segs.get(i.saturating_sub(1)) {
            Some(s) if stream >= s.stream => (s.file + (stream - s.stream), s.record),
            _ => (stream, 0),
        }
    }

    /// Stream offset of the next record start after `stream`, if already in the window.
    fn next_record_start(&self, stream: u64) -> Option<u64> {
        let i = self.segs.partition_point(|s| s.stream <= stream);
        self.segs
            .range(i..)
            .find(|s| s.starts_record)
            .map(|s| s.stream)
    }

    fn skip_bytes(&mut self, from: usize, to: usize, why: &str) {
        if to <= from {
            return;
        }
        let (off, rec) = self.locate(self.base + from as u64);
        self.report.skip(off, Some(rec), (to - from) as u64, why);
    }

    /// Counts `win[from..to]` as padding if it is zero, else as skipped.
    fn padding_or_skip(&mut self, from: usize, to: usize, why: &str) {
        let nz = self.win[from..to].iter().position(|&b| b != 0);
        match nz {
            None => self.report.padding_bytes += (to - from) as u64,
            Some(i) => {
                self.report.padding_bytes += i as u64;
                self.skip_bytes(from + i, to, why);
            }
        }
    }

    /// Whether a whole valid CTE starts at window position `p` (fetching bytes as needed).
    fn valid_at(&mut self, p: usize) -> io::Result<Option<CteHeader>> {
        if !self.want(p - self.pos + HEADER_LEN + 2)? {
            return Ok(None);
        }
        let Ok(h) = cte::check_head(&self.win[p..]) else {
            return Ok(None);
        };
        let l = h.length as usize;
        if !self.want(p - self.pos + l)? {
            return Ok(None);
        }
        Ok(cte::check(&self.win[p..p + l]).ok())
    }

    /// One zero byte left at the end of a record is too short for a CTE length: the
    /// writer left it as fill. (Unless the length really straddles: then no valid CTE
    /// starts at the next record.) Checked only when the bytes at `p` do not read as a
    /// CTE, which keeps it off the path of every good one. Counts it and moves on.
    fn one_byte_fill(&mut self, p: usize) -> io::Result<bool> {
        if self.win[p] == 0
            && let Some(next) = self.next_record_start(self.base + p as u64)
            && next == self.base + p as u64 + 1
            && self.valid_at(p + 1)?.is_some()
        {
            self.report.padding_bytes += 1;
            self.pos = p + 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether a whole valid CTE starts anywhere in `win[from..to]`.
    fn valid_between(&mut self, from: usize, to: usize) -> io::Result<bool> {
        for q in from..to.saturating_sub(HEADER_LEN + 1) {
            if be16(&self.win, q + 2) >= HEADER_LEN && self.valid_at(q)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// From `from` (a window position), finds the next valid CTE and consumes the gap.
    fn resync(&mut self, from: usize, why: &str, after_end_mark: bool) -> io::Result<()> {
        // Damage at `from`: the first candidate is the next byte.
        let first = if after_end_mark { from } else { from + 1 };
        self.resync_from(from, first, why, after_end_mark, true)
    }

    /// The search of `resync`, from candidate `q` on. It gives up the window after
    /// RESYNC_WINDOW bytes, accounting for them and leaving the rest to `advance`
    /// (`pending`), so a long stretch of garbage never has to sit in memory at once.
    fn resync_from(
        &mut self,
        from: usize,
        mut q: usize,
        why: &str,
        after_end_mark: bool,
        new_gap: bool,
    ) -> io::Result<()> {
        loop {
            if !self.want(q - self.pos + HEADER_LEN + 2)? {
                // End of file: the rest is padding or undecodable.
                let end = self.win.len();
                self.account_gap(from, end, why, after_end_mark);
                self.pos = end;
                return Ok(());
            }
            // Cheap filter on the data offset before the full check.
            if be16(&self.win, q + 2) >= HEADER_LEN && self.valid_at(q)?.is_some() {
                break;
            }
            q += 1;
            if q - from >= RESYNC_WINDOW {
                self.account_gap(from, q, why, after_end_mark);
                if new_gap && !after_end_mark {
                    self.report.resyncs += 1;
                }
                self.pos = q;
                self.pending = Some((why.to_string(), after_end_mark));
                return Ok(());
            }
        }
        self.account_gap(from, q, why, after_end_mark);
        if new_gap && q > from && !after_end_mark {
            self.report.resyncs += 1;
        }
        self.pos = q;
        Ok(())
    }

    /// Classifies the bytes `win[from..to]` that lie between two CTE chains.
    fn account_gap(&mut self, from: usize, to: usize, why: &str, after_end_mark: bool) {
        if to <= from {
            return;
        }
        if !after_end_mark {
            self.skip_bytes(from, to, why);
            return;
        }
        // After an end-of-buffer mark in a raw stream: zero fill, then possibly the next
        // record's writer header, then the next CTE.
        let nz = self.win[from..to]
            .iter()
            .position(|&b| b != 0)
            .map_or(to, |i| from + i);
        self.report.padding_bytes += (nz - from) as u64;
        let rest = to - nz;
        if rest > 0 && Some(rest) == self.raw_header {
            self.report.header_bytes += rest as u64;
        } else if rest > 0 && nz == to {
            self.report.padding_bytes += rest as u64;
        } else {
            self.skip_bytes(nz, to, why);
            if rest > 0 {
                self.report.resyncs += 1;
            }
        }
    }

    /// The next CTE, or `None` at end of file. Damage on the way is reported and skipped.
    pub fn next_cte(&mut self) -> io::Result<Option<Cte<'_>>> {
        Ok(self.next_split()?.0)
    }

    /// Like `next`, and also lends the report, so a caller can record what it finds in
    /// the CTE while holding it.
    pub fn next_split(&mut self) -> io::Result<(Option<Cte<'_>>, &mut Report)> {
        let found = self.advance()?;
        let located = found.map(|(p, l, header)| (p, l, header, self.locate(self.base + p as u64)));
        let win = &self.win;
        let cte = located.map(|(p, l, header, (offset, record))| Cte {
            offset,
            record,
            header,
            bytes: &win[p..p + l],
        });
        Ok((cte, &mut self.report))
    }

    /// Finds the next CTE: its window position, length and header.
    fn advance(&mut self) -> io::Result<Option<(usize, usize, CteHeader)>> {
        loop {
            self.compact();
            if let Some((why, mark)) = self.pending.take() {
                let p = self.pos;
                self.resync_from(p, p, &why, mark, false)?;
                continue;
            }
            // Raw streams: bytes before the first CTE are the writer header.
            if !self.boundaries()
                && self.base == 0
                && self.pos == 0
                && self.raw_header.is_some()
                && !self.started
            {
                // A header length given by the user: strip it from the start of the stream.
                self.started = true;
                let h = self.raw_header.unwrap_or(0);
                if self.want(h)? {
                    self.report.header_bytes += h as u64;
                    (self.layout.component, self.layout.system) = header_names(&self.win[..h]);
                    self.pos = h;
                }
            }
            if !self.boundaries() && self.base == 0 && self.pos == 0 && self.raw_header.is_none() {
                let mut q = 0;
                while q <= MAX_HEADER {
                    if !self.want(q + HEADER_LEN + 2)? {
                        break;
                    }
                    if self.valid_at(q)?.is_some() {
                        break;
                    }
                    q += 1;
                }
                if q <= MAX_HEADER && self.valid_at(q)?.is_some() {
                    self.raw_header = Some(q);
                    self.layout.header_len = q;
                    self.report.header_bytes += q as u64;
                    (self.layout.component, self.layout.system) = header_names(&self.win[..q]);
                    self.pos = q;
                } else {
                    self.raw_header = Some(0);
                }
            }
            if !self.want(2)? {
                let end = self.win.len();
                let p = self.pos;
                if self.win[p..end].iter().any(|&b| b != 0) {
                    let (off, rec) = self.locate(self.base + p as u64);
                    self.report.issue(
                        off,
                        Some(rec),
                        IssueKind::Truncated,
                        0,
                        "file ends inside a CTE length".into(),
                    );
                }
                self.padding_or_skip(p, end, "file ends inside a CTE length");
                self.pos = end;
                return Ok(None);
            }
            let p = self.pos;
            let l = be16(&self.win, p);
            if l == 0 {
                // End of buffer: the rest up to the next record is zero fill.
                if self.boundaries() {
                    // Bounded: a record (or salvaged bytes) may go on for a long time.
                    let to = loop {
                        if let Some(next) = self.next_record_start(self.base + p as u64) {
                            break ((next - self.base) as usize).min(p + RESYNC_WINDOW);
                        }
                        if self.win.len() - p >= RESYNC_WINDOW || !self.fill()? {
                            break self.win.len().min(p + RESYNC_WINDOW);
                        }
                    };
                    if self.win[p..to].iter().all(|&b| b == 0) {
                        self.report.padding_bytes += (to - p) as u64;
                        self.pos = to;
                    } else {
                        // Not fill: a damaged record, or record data the deframer could
                        // not frame. Look for CTEs in it rather than skip it whole.
                        self.resync(p, "non-zero bytes after the end-of-buffer mark", true)?;
                    }
                } else {
                    self.resync(p, "bytes between trace buffers", true)?;
                }
                continue;
            }
            if !self.want(HEADER_LEN + 2)? {
                let end = self.win.len();
                self.padding_or_skip(p, end, "file ends inside a CTE header");
                self.report.issue(
                    self.locate(self.base + p as u64).0,
                    None,
                    IssueKind::Truncated,
                    0,
                    "file ends inside a CTE".into(),
                );
                self.pos = end;
                return Ok(None);
            }
            let seen = self.win.len() - p;
            let head = match cte::check_head(&self.win[p..]) {
                Ok(h) => h,
                Err(why) => {
                    if !self.one_byte_fill(p)? {
                        self.resync(p, why.as_str(), false)?;
                    }
                    continue;
                }
            };
            let l = head.length as usize;
            debug_assert!(l <= MAX_CTE);
            if !self.want(l)? {
                let end = self.win.len();
                // A length damaged upwards also runs past the end: if a valid CTE follows,
                // this one is damage, not the cut end of the file.
                if self.valid_between(p + 1, end)? {
                    self.resync(p, "CTE length runs past the end of the file", false)?;
                    continue;
                }
                let (off, rec) = self.locate(self.base + p as u64);
                self.report.issue(
                    off,
                    Some(rec),
                    IssueKind::Truncated,
                    0,
                    format!("file ends inside a CTE: {} of {l} bytes present", end - p),
                );
                self.skip_bytes(p, end, "incomplete CTE at end of file");
                self.pos = end;
                return Ok(None);
            }
            if be16(&self.win, p + l - 2) != l {
                if !self.one_byte_fill(p)? {
                    self.resync(p, cte::Invalid::Trailer.as_str(), false)?;
                }
                continue;
            }
            // The whole predicate now that the whole CTE is here, when the first check
            // could not reach PTH_len (the window ended early).
            if seen < head.data_offset as usize + 2
                && let Err(why) = cte::check(&self.win[p..p + l])
            {
                self.resync(p, why.as_str(), false)?;
                continue;
            }
            self.pos = p + l;
            self.report.cte_bytes += l as u64;
            match self.report.ctes.get_mut(&head.format_id) {
                Some(n) => *n += 1,
                None => {
                    self.report.ctes.insert(head.format_id, 1);
                }
            }
            if head.format_id.is_lost_notice() {
                self.report.lost_notices += 1;
            }
            return Ok(Some((p, l, head)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cte(fmt: u32, data: &[u8]) -> Vec<u8> {
        let len = (16 + 92 + data.len() + 2) as u16;
        let mut v = Vec::new();
        v.extend(len.to_be_bytes());
        v.extend(16u16.to_be_bytes());
        v.extend(fmt.to_be_bytes());
        v.extend(0xDE6E_758D_DC00_0000u64.to_be_bytes());
        v.extend(92u16.to_be_bytes());
        v.resize(16 + 92, 0);
        v.extend(data);
        v.extend(len.to_be_bytes());
        v
    }

    fn all(bytes: &[u8], opts: &Options) -> (Vec<(u64, Vec<u8>)>, Report, Layout) {
        let mut s = Scanner::open(bytes, opts).unwrap();
        let mut v = Vec::new();
        while let Some(c) = s.next_cte().unwrap() {
            v.push((c.offset, c.bytes.to_vec()));
        }
        let l = s.layout().clone();
        let r = s.into_report();
        assert_eq!(r.unaccounted(), 0, "{r:?}");
        assert_eq!(r.bytes_read as usize, bytes.len());
        (v, r, l)
    }

    fn rdw(body: &[u8]) -> Vec<u8> {
        let mut v = ((body.len() + 4) as u16).to_be_bytes().to_vec();
        v.extend([0, 0]);
        v.extend(body);
        v
    }

    #[test]
    fn raw_buffer_with_zero_tail() {
        let a = cte(4, b"abc");
        let b = cte(4, b"defg");
        let mut f = a.clone();
        f.extend(&b);
        f.extend([0u8; 100]);
        f.extend(&a);
        let (v, r, _) = all(&f, &Options::default());
        assert_eq!(v.len(), 3);
        assert_eq!(v[2].0 as usize, a.len() + b.len() + 100);
        assert_eq!(r.padding_bytes, 100);
        assert!(r.clean(), "{r:?}");
    }

    #[test]
    fn learns_header_and_joins_straddling_cte() {
        let a = cte(4, &[7; 40]);
        let mut stream = Vec::new();
        for _ in 0..6 {
            stream.extend(&a);
        }
        // Records of 64 header bytes + 200 payload bytes: CTEs straddle boundaries.
        let mut f = Vec::new();
        for (i, chunk) in stream.chunks(200).enumerate() {
            let mut body = vec![0xC1u8; 64];
            body[0] = i as u8 + 1;
            body.extend(chunk);
            f.extend(rdw(&body));
        }
        let (v, r, l) = all(&f, &Options::default());
        assert_eq!(l.header_len, 64);
        assert_eq!(v.len(), 6);
        assert!(v.iter().all(|(_, b)| b == &a));
        assert!(r.clean(), "{r:?}");
        assert_eq!(r.header_bytes, 64 * f.len().div_ceil(268) as u64);
    }

    #[test]
    fn damage_is_skipped_counted_and_resynchronised() {
        let a = cte(4, b"xyz");
        let mut f = a.clone();
        f.extend([0x55u8; 13]);
        f.extend(&a);
        let (v, r, _) = all(&f, &Options::default());
        assert_eq!(v.len(), 2);
        assert_eq!(r.bytes_skipped, 13);
        assert_eq!(r.resyncs, 1);
        assert_eq!(r.issues[0].offset as usize, a.len());
    }

    #[test]
    fn one_damaged_record_does_not_mislead_header_learning() {
        let a = cte(4, &[1; 30]);
        let mut f = Vec::new();
        for i in 0..10 {
            let mut body = vec![0xE2u8; 32];
            if i == 0 {
                body.extend([0x77u8; 5]); // damaged first record
            }
            body.extend(&a);
            body.extend(&a);
            body.extend([0, 0]);
            f.extend(rdw(&body));
        }
        let (v, r, l) = all(&f, &Options::default());
        assert_eq!(l.header_len, 32);
        assert_eq!(v.len(), 20);
        assert_eq!(r.bytes_skipped, 5);
        // override
        let (_, _, l) = all(
            &f,
            &Options {
                header_len: Some(31),
                ..Options::default()
            },
        );
        assert_eq!(l.header_len, 31);
    }

    #[test]
    fn truncated_file_reports_the_cut_cte() {
        let a = cte(4, &[9; 50]);
        let mut f = a.clone();
        f.extend(&a[..60]);
        let (v, r, _) = all(&f, &Options::default());
        assert_eq!(v.len(), 1);
        assert!(!r.clean());
        assert!(r.issues.iter().any(|i| i.kind == IssueKind::Truncated));
    }
}
