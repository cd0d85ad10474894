//! Test helpers: an independent reader of what zctrace writes (pcap-parser, not the
//! pcap-file crate that writes it), the shared captures, and tool detection.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

#[derive(Clone, Debug, Default)]
pub struct Iface {
    pub name: String,
    pub description: String,
    pub linktype: i32,
    pub tsresol: Option<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Pkt {
    pub iface: usize,
    pub ts_ns: i64,
    pub caplen: u32,
    pub origlen: u32,
    pub data: Vec<u8>,
    pub comments: Vec<String>,
    pub flags: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Isb {
    pub iface: usize,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub recv: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct Capture {
    pub legacy_linktype: Option<i32>,
    pub shb_comments: Vec<String>,
    pub shb_userappl: Option<String>,
    pub ifaces: Vec<Iface>,
    pub packets: Vec<Pkt>,
    pub isbs: Vec<Isb>,
}

fn ts64(b: &[u8]) -> u64 {
    // pcapng 64-bit timestamps: high word, then low word, each little-endian here.
    let hi = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
    let lo = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as u64;
    (hi << 32) | lo
}

/// Reads a pcap or pcapng file (nanosecond pcapng resolution checked by the caller).
pub fn read(bytes: &[u8]) -> Capture {
    let mut c = Capture::default();
    let mut r = create_reader(1 << 20, Cursor::new(bytes.to_vec())).expect("capture header");
    let mut legacy_ns = false;
    loop {
        match r.next() {
            Ok((off, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        c.legacy_linktype = Some(h.network.0);
                        legacy_ns = h.is_nanosecond_precision();
                    }
                    PcapBlockOwned::Legacy(p) => {
                        let frac = p.ts_usec as i64 * if legacy_ns { 1 } else { 1000 };
                        c.packets.push(Pkt {
                            ts_ns: p.ts_sec as i64 * 1_000_000_000 + frac,
                            caplen: p.caplen,
                            origlen: p.origlen,
                            data: p.data.to_vec(),
                            ..Default::default()
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        for o in &shb.options {
                            match o.code.0 {
                                1 => c.shb_comments.push(o.as_str().unwrap_or("").to_string()),
                                4 => c.shb_userappl = Some(o.as_str().unwrap_or("").to_string()),
                                _ => {}
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let mut i = Iface {
                            linktype: idb.linktype.0,
                            ..Default::default()
                        };
                        for o in &idb.options {
                            match o.code.0 {
                                2 => i.name = o.as_str().unwrap_or("").to_string(),
                                3 => i.description = o.as_str().unwrap_or("").to_string(),
                                9 => i.tsresol = o.value().first().copied(),
                                _ => {}
                            }
                        }
                        c.ifaces.push(i);
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let mut p = Pkt {
                            iface: epb.if_id as usize,
                            ts_ns: (((epb.ts_high as u64) << 32) | epb.ts_low as u64) as i64,
                            caplen: epb.caplen,
                            origlen: epb.origlen,
                            data: epb.data[..epb.caplen as usize].to_vec(),
                            ..Default::default()
                        };
                        for o in &epb.options {
                            match o.code.0 {
                                1 => p.comments.push(o.as_str().unwrap_or("").to_string()),
                                2 => p.flags = o.as_u32_le().ok(),
                                _ => {}
                            }
                        }
                        c.packets.push(p);
                    }
                    PcapBlockOwned::NG(Block::InterfaceStatistics(isb)) => {
                        let mut s = Isb {
                            iface: isb.if_id as usize,
                            ..Default::default()
                        };
                        for o in &isb.options {
                            let v = o.value();
                            match o.code.0 {
                                2 if v.len() >= 8 => s.start = Some(ts64(v)),
                                3 if v.len() >= 8 => s.end = Some(ts64(v)),
                                4 if v.len() >= 8 => s.recv = o.as_u64_le().ok(),
                                _ => {}
                            }
                        }
                        c.isbs.push(s);
                    }
                    _ => {}
                }
                r.consume(off);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => r.refill().expect("refill"),
            Err(e) => panic!("unreadable output: {e:?}"),
        }
    }
    c
}

pub fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/captures")
}

/// Every shared capture, sorted by name.
pub fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(captures_dir())
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether an external tool is there. In CI (ZCTRACE_REQUIRE_TOOLS=1) a missing tool
/// fails the test; elsewhere the test is skipped with a message.
pub fn have_tool(name: &str) -> bool {
    let ok = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() || !o.stdout.is_empty() || !o.stderr.is_empty());
    if !ok {
        if std::env::var("ZCTRACE_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
            panic!("{name} is required (ZCTRACE_REQUIRE_TOOLS=1) but not installed");
        }
        eprintln!(
            "SKIPPED: {name} not installed; set ZCTRACE_REQUIRE_TOOLS=1 to make this a failure"
        );
    }
    ok
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zctrace"))
}

/// A trace converted with the tables collected: the rows and the pcapng.
pub fn analyse(trace: &[u8]) -> (zctrace::analyze::rows::Collect, Vec<u8>) {
    let mut rows = zctrace::analyze::rows::Collect::default();
    let d = zctrace::trace::DiscardTable::default();
    let (_, pcapng) = zctrace::convert::convert_analyzed(
        trace,
        Vec::new(),
        Some((&mut rows, &Default::default())),
        "t",
        &zctrace::convert::Options::default(),
        &d,
        |_| {},
    )
    .unwrap();
    (rows, pcapng)
}

/// `tshark -r file -T fields -E separator=| [options] -e field...`: one row of cells
/// per frame shown. The run must succeed.
pub fn tshark_fields(file: &Path, options: &[&str], fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args(options);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// Traces merged with the tables collected (no output file, no path.csv).
pub fn merge_analysed(
    inputs: &[(&str, &[u8])],
) -> (zctrace::convert::Merged, zctrace::analyze::rows::Collect) {
    let mut rows = zctrace::analyze::rows::Collect::default();
    let (m, _) = zctrace::convert::merge(
        inputs.iter().map(|&(n, b)| (n.to_string(), b)).collect(),
        std::io::sink(),
        Some((&mut rows, &Default::default())),
        None,
        &zctrace::convert::Options::default(),
        &zctrace::trace::DiscardTable::default(),
        |_| {},
    )
    .unwrap();
    (m, rows)
}
