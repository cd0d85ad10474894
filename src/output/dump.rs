//! `zctrace dump`: a readable decode of every CTE, like IBM's FORMAT report, with the
//! damage found between records shown where it occurred. Also the golden view in tests.

use std::io::{self, Read, Write};

use crate::trace::ebcdic::{CodePage, ascii_printable};
use crate::trace::pthdr::{PtHdr, addr};
use crate::trace::tod::iso8601;
use crate::trace::{DiscardCode, DiscardTable, FormatId, Report, Scanner};

#[derive(Clone, Debug, Default)]
pub struct Options {
    pub scan: crate::trace::Options,
    pub code_page: CodePage,
    pub leap_seconds: i64,
    /// Stop after this many records.
    pub limit: Option<u64>,
    /// Only records of these format ids (empty: all).
    pub formats: Vec<FormatId>,
}

/// Hex lines: offset, 16 bytes in four groups, then ASCII and EBCDIC renderings.
pub fn hex(out: &mut impl Write, data: &[u8], cp: CodePage, indent: &str) -> io::Result<()> {
    for (i, chunk) in data.chunks(16).enumerate() {
        let mut h = String::with_capacity(40);
        for (j, b) in chunk.iter().enumerate() {
            if j > 0 && j % 4 == 0 {
                h.push(' ');
            }
            h += &format!("{b:02X}");
        }
        let a: String = chunk.iter().map(|&b| ascii_printable(b)).collect();
        let e: String = chunk.iter().map(|&b| cp.printable(b)).collect();
        writeln!(out, "{indent}{:04X}  {h:<35}  |{a:<16}|  |{e:<16}|", i * 16)?;
    }
    Ok(())
}

fn flags_text(f: u8) -> String {
    let mut v = Vec::new();
    if f & 0x80 != 0 {
        v.push("both-local");
    }
    if f & 0x40 != 0 {
        v.push("AT-TLS withheld");
    }
    if f & 0x20 != 0 {
        v.push("AT-TLS clear");
    }
    if f & 0x1E != 0 {
        v.push("unknown bits");
    }
    v.push(if f & 1 != 0 { "outbound" } else { "inbound" });
    v.join(", ")
}

fn header_lines(
    out: &mut impl Write,
    h: &PtHdr,
    fmt: FormatId,
    o: &Options,
    discards: &DiscardTable,
) -> io::Result<()> {
    writeln!(
        out,
        "  PTHDR len {} seq {} flags X'{:02X}' ({}) device type {} traced length {}",
        h.len,
        h.seq,
        h.flags.0,
        flags_text(h.flags.0),
        h.dev_type,
        h.tlen
    )?;
    if let Some(n) = h.name {
        if fmt == FormatId::DATA {
            writeln!(
                out,
                "  job {:?} domain {} type {} protocol {} state {} (bytes 0x14-0x17: {:02X}{:02X}{:02X}{:02X})",
                o.code_page.decode_name(&n.0[..8]),
                n.0[8],
                n.0[9],
                n.0[10],
                n.0[11],
                n.0[12],
                n.0[13],
                n.0[14],
                n.0[15]
            )?;
        } else {
            writeln!(out, "  interface {:?}", o.code_page.decode_name(&n.0))?;
        }
    }
    if let Some(t) = h.time {
        writeln!(
            out,
            "  time {} (TOD X'{:016X}')",
            iso8601(t.unix_ns(o.leap_seconds)),
            t.0
        )?;
    }
    if let (Some(s), Some(d)) = (h.src, h.dst) {
        let (sp, dp) = h.ports.map_or((0, 0), |p| (p[0], p[1]));
        writeln!(
            out,
            "  source {} port {sp}  destination {} port {dp}",
            addr(s),
            addr(d)
        )?;
    }
    if let Some(u) = h.unknown {
        let hx: String = u.iter().map(|b| format!("{b:02X}")).collect();
        writeln!(out, "  bytes 0x44-0x51 (meaning unknown): {hx}")?;
    }
    let mut tail = Vec::new();
    if let Some(p) = h.plen {
        tail.push(format!("original length {p}"));
    }
    if let Some(i) = h.if_index {
        tail.push(format!("interface index {i}"));
    }
    if let Some(d) = h.drop_reason {
        let txt = discards.describe(DiscardCode(d));
        tail.push(if d == 0 {
            "not discarded".into()
        } else {
            format!("discard {d} {txt}")
        });
    }
    if let Some(s) = h.off_seg_len {
        tail.push(format!("segment offset {s}"));
    }
    if !tail.is_empty() {
        writeln!(out, "  {}", tail.join(", "))?;
    }
    if !h.rest.is_empty() {
        let hx: String = h.rest.iter().map(|b| format!("{b:02X}")).collect();
        writeln!(out, "  further header bytes ({}): {hx}", h.rest.len())?;
    }
    Ok(())
}

/// Writes the dump of `src` to `out` and returns the decode report.
pub fn dump<R: Read, W: Write>(
    src: R,
    mut out: W,
    o: &Options,
    discards: &DiscardTable,
) -> io::Result<Report> {
    let mut s = Scanner::open(src, &o.scan)?;
    let l = s.layout().clone();
    writeln!(
        out,
        "framing {}{}; writer header {} bytes{}{}{}",
        l.framing.map_or("?", |f| f.name()),
        if l.framing_forced {
            " (forced)"
        } else {
            " (detected)"
        },
        l.header_len,
        if l.header_forced { " (forced)" } else { "" },
        l.fixed_record
            .map_or(String::new(), |r| format!("; raw records of {r} bytes")),
        match (&l.component, &l.system) {
            (Some(c), Some(y)) => format!("; component {c} system {y}"),
            (Some(c), None) => format!("; component {c}"),
            _ => String::new(),
        }
    )?;
    let mut n = 0u64;
    let mut shown_issues = 0;
    loop {
        let (next, report) = s.next_split()?;
        // Damage found while looking for this record is printed before it.
        let issues = &report.issues;
        for i in &issues[shown_issues..] {
            writeln!(out, "*** {i}")?;
        }
        shown_issues = issues.len();
        let Some(c) = next else { break };
        n += 1;
        let h = c.header;
        if !o.formats.is_empty() && !o.formats.contains(&h.format_id) {
            continue;
        }
        writeln!(
            out,
            "\nCTE {n} at offset {} (0x{:X}), record {}: length {}, data offset {}, format {} ({}), buffer time {}",
            c.offset,
            c.offset,
            c.record,
            h.length,
            h.data_offset,
            h.format_id,
            h.format_id.name(),
            iso8601(h.buffer_time.unix_ns(o.leap_seconds))
        )?;
        let off = h.data_offset as usize;
        let body = &c.bytes[off..c.bytes.len() - 2];
        if h.format_id.is_lost_notice() || body.len() < 2 {
            hex(&mut out, body, o.code_page, "  ")?;
        } else {
            let pl = (u16::from_be_bytes([body[0], body[1]]) as usize).min(body.len());
            match PtHdr::parse(&body[..pl]) {
                Ok(ph) => header_lines(&mut out, &ph, h.format_id, o, discards)?,
                Err(e) => writeln!(out, "  PTHDR not decodable: {e}")?,
            }
            let data = &body[pl..];
            writeln!(out, "  data ({} bytes):", data.len())?;
            hex(&mut out, data, o.code_page, "  ")?;
        }
        if o.limit.is_some_and(|m| n >= m) {
            break;
        }
    }
    Ok(s.into_report())
}
