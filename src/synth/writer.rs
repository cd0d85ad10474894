//! Synthesizer, output side: CTEs -> trace buffers -> logical records -> framed file.
//!
//! `TraceWriter` packs CTEs into trace buffers and cuts the buffers into fixed-length
//! logical records, each starting with our synthetic writer header
//! (formats/writer-header.md). `Framer` puts the download's framing around the records
//! (formats/framing.md): nothing, an RDW per record (or per VBS segment), or blocks with
//! a BDW. Only one record and one block are held at a time, so memory stays bounded
//! however much is written.

use std::io::{self, BufWriter, Write};

use crate::trace::framing::Framing;

/// Largest RDW or BDW length (the 2-byte form; the decoder reads lengths up to 65535,
/// but z/OS limits records and blocks to 32760).
pub(super) const MAX_DESCRIBED: usize = 32_760;
/// Segment control codes in byte 2 of a segment descriptor word.
const SEG_COMPLETE: u8 = 0;
const SEG_FIRST: u8 = 1;
const SEG_LAST: u8 = 2;
const SEG_MIDDLE: u8 = 3;

/// Framing of the output file.
pub(super) struct Framer<W: Write> {
    out: BufWriter<W>,
    framing: Framing,
    /// VBS: at most this many body bytes per segment.
    spanned: Option<usize>,
    /// BDW framing: maximum block length including the BDW.
    block_len: usize,
    /// Descriptor-framed pieces of the block being filled (without its BDW).
    block: Vec<u8>,
    /// Bytes written so far (descriptors included).
    pub bytes: u64,
}

impl<W: Write> Framer<W> {
    pub fn new(out: W, framing: Framing, spanned: Option<usize>, block_len: usize) -> Self {
        Framer {
            out: BufWriter::with_capacity(1 << 16, out),
            framing,
            spanned,
            block_len,
            block: Vec::new(),
            bytes: 0,
        }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    /// Writes one logical record.
    pub fn record(&mut self, body: &[u8]) -> io::Result<()> {
        if self.framing == Framing::Raw {
            return self.put(body);
        }
        // A record that fits one segment is written whole (code 0), as VBS does for
        // records that need no spanning; longer ones as first, middle..., last.
        let seg = self.spanned.unwrap_or(body.len()).max(1);
        if body.len() <= seg {
            return self.piece(body, SEG_COMPLETE);
        }
        let n = body.len().div_ceil(seg);
        for (i, part) in body.chunks(seg).enumerate() {
            let code = match i {
                0 => SEG_FIRST,
                _ if i + 1 == n => SEG_LAST,
                _ => SEG_MIDDLE,
            };
            self.piece(part, code)?;
        }
        Ok(())
    }

    /// One RDW-framed record or segment, into the file or into the current block.
    fn piece(&mut self, body: &[u8], code: u8) -> io::Result<()> {
        // Validated up front: the body plus its RDW fits a record (and a block).
        let len = (body.len() + 4) as u16;
        let rdw = [(len >> 8) as u8, len as u8, code, 0];
        if self.framing == Framing::Rdw {
            self.put(&rdw)?;
            return self.put(body);
        }
        if !self.block.is_empty() && 4 + self.block.len() + 4 + body.len() > self.block_len {
            self.flush_block()?;
        }
        self.block.extend_from_slice(&rdw);
        self.block.extend_from_slice(body);
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let len = (self.block.len() + 4) as u16;
        let block = std::mem::take(&mut self.block);
        self.put(&[(len >> 8) as u8, len as u8, 0, 0])?;
        self.put(&block)?;
        self.block = block;
        self.block.clear();
        Ok(())
    }

    /// Writes the last block and flushes; returns the output and the bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.flush_block()?;
        let bytes = self.bytes;
        let out = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((out, bytes))
    }
}

/// Fixed parts of the synthetic writer header (formats/writer-header.md).
pub(super) struct HeaderTemplate {
    /// Component name and system name, EBCDIC.
    pub names: [u8; 16],
    pub len: usize,
}

impl HeaderTemplate {
    /// The first `len` bytes of: names (16), record sequence (4), buffer sequence (4),
    /// zero filler.
    fn write(&self, into: &mut [u8], record: u32, buffer: u32) {
        let mut full = [0u8; 24];
        full[..16].copy_from_slice(&self.names);
        full[16..20].copy_from_slice(&record.to_be_bytes());
        full[20..24].copy_from_slice(&buffer.to_be_bytes());
        let n = self.len.min(24);
        into[..n].copy_from_slice(&full[..n]);
        into[n..self.len].fill(0);
    }
}

/// Packs CTEs into trace buffers and buffers into records.
pub(super) struct TraceWriter<W: Write> {
    framer: Framer<W>,
    header: HeaderTemplate,
    /// The record being filled: header, then payload; always `record_len` long.
    record: Vec<u8>,
    /// Payload bytes a record can hold (`record_len - header_len`).
    payload: usize,
    /// Trace buffer size: `payload` without straddling, larger with it.
    buffer_len: usize,
    /// A record is open (its header is written).
    rec_open: bool,
    /// Payload bytes of the open record that belong to the buffer (the buffer's last
    /// record may hold less than `payload`; the rest is padding).
    rec_cap: usize,
    /// Payload bytes filled in the open record.
    rec_fill: usize,
    /// A buffer is open and has `buf_left` bytes of room.
    buf_open: bool,
    buf_left: usize,
    rec_seq: u32,
    buf_seq: u32,
    pub records: u64,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(
        framer: Framer<W>,
        header: HeaderTemplate,
        record_len: usize,
        buffer_len: usize,
    ) -> Self {
        let payload = record_len - header.len;
        TraceWriter {
            framer,
            record: vec![0; record_len],
            header,
            payload,
            buffer_len,
            rec_open: false,
            rec_cap: 0,
            rec_fill: 0,
            buf_open: false,
            buf_left: 0,
            rec_seq: 0,
            buf_seq: 0,
            records: 0,
        }
    }

    /// Bytes written to the output so far (records already complete).
    pub fn bytes(&self) -> u64 {
        self.framer.bytes
    }

    /// Appends one CTE (at most `buffer_len` bytes, checked by the caller's plan).
    pub fn put_cte(&mut self, cte: &[u8]) -> io::Result<()> {
        debug_assert!(cte.len() <= self.buffer_len);
        if !self.buf_open || cte.len() > self.buf_left {
            // The CTE does not fit: the rest of the buffer stays zero, and the zero
            // length where the next CTE would be tells the reader the buffer ended.
            self.end_buffer()?;
            self.buf_seq = self.buf_seq.wrapping_add(1);
            self.buf_left = self.buffer_len;
            self.buf_open = true;
        }
        let mut rest = cte;
        while !rest.is_empty() {
            if !self.rec_open {
                self.open_record();
            }
            let n = rest.len().min(self.rec_cap - self.rec_fill);
            let at = self.header.len + self.rec_fill;
            self.record[at..at + n].copy_from_slice(&rest[..n]);
            self.rec_fill += n;
            self.buf_left -= n;
            rest = &rest[n..];
            if self.rec_fill == self.rec_cap {
                self.emit_record()?;
            }
        }
        Ok(())
    }

    fn open_record(&mut self) {
        self.rec_seq = self.rec_seq.wrapping_add(1);
        self.header
            .write(&mut self.record, self.rec_seq, self.buf_seq);
        self.record[self.header.len..].fill(0);
        self.rec_cap = self.payload.min(self.buf_left);
        self.rec_fill = 0;
        self.rec_open = true;
    }

    fn emit_record(&mut self) -> io::Result<()> {
        self.framer.record(&self.record)?;
        self.records += 1;
        self.rec_open = false;
        Ok(())
    }

    /// Zero fills the open buffer to its end: the rest of the open record, then whole
    /// records (header and zeros) for the buffer's remaining chunks. A split buffer is
    /// always written whole, as the trace writer copies whole buffers.
    fn end_buffer(&mut self) -> io::Result<()> {
        if !self.buf_open {
            return Ok(());
        }
        if self.rec_open {
            self.buf_left -= self.rec_cap - self.rec_fill;
            self.emit_record()?;
        }
        while self.buf_left > 0 {
            self.open_record();
            self.buf_left -= self.rec_cap;
            self.emit_record()?;
        }
        self.buf_open = false;
        Ok(())
    }

    /// Pads the last record (not the rest of its buffer) and flushes everything.
    pub fn finish(mut self) -> io::Result<(W, u64, u64)> {
        if self.rec_open {
            self.emit_record()?;
        }
        let records = self.records;
        let (out, bytes) = self.framer.finish()?;
        Ok((out, records, bytes))
    }
}
