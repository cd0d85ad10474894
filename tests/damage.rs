//! Damaged input: every prefix of every sample and files with random byte flips never
//! panic, every byte stays accounted for, the packets outside the damage come back and
//! the summary says where the damage was.

mod common;

use zctrace::convert::{self, Output, Summary};
use zctrace::synth;
use zctrace::trace::{DiscardTable, Framing, IssueKind};

fn decode(bytes: &[u8]) -> (Summary, Vec<(i64, Vec<u8>)>) {
    let d = DiscardTable::default();
    let mut packets = Vec::new();
    let o = convert::Options {
        output: Output::Pcapng,
        ..Default::default()
    };
    let (s, out) = convert::convert(bytes, Vec::new(), "t", &o, &d, |_| {})
        .expect("in-memory decode cannot fail");
    for p in common::read(&out).packets {
        packets.push((p.ts_ns, p.data));
    }
    assert_eq!(s.report.bytes_read as usize, bytes.len());
    assert_eq!(s.report.unaccounted(), 0, "{:?}", s.report);
    (s, packets)
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(v.len() >= 5, "samples missing");
    v
}

/// File extents (offset, length) of the CTEs the scanner finds in `bytes`.
fn cte_extents(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut s = zctrace::trace::Scanner::open(bytes, &Default::default()).unwrap();
    let mut v = Vec::new();
    while let Some(c) = s.next_cte().unwrap() {
        v.push((c.offset as usize, c.bytes.len()));
    }
    v
}

#[test]
fn every_prefix_of_every_sample() {
    for (name, bytes) in samples() {
        let (full_sum, full) = decode(&bytes);
        let full_clean = full_sum.clean();
        let ctes = cte_extents(&bytes);
        let mut cut_seen = 0;
        for n in 0..=bytes.len() {
            let (s, got) = decode(&bytes[..n]);
            assert!(got.len() <= full.len(), "{name}[..{n}]");
            // All but the last packet are exactly the full file's first packets; the
            // last may be a segmented packet cut short.
            let whole = got.len().saturating_sub(1);
            if let Some(i) = (0..whole).find(|&i| got[i] != full[i]) {
                panic!(
                    "{name}[..{n}]: packet {} differs from the whole file's",
                    i + 1
                );
            }
            // A cut strictly inside a CTE is never reported as a clean file, unless all
            // that is left of the CTE is zero bytes: those read as end-of-buffer fill.
            if ctes
                .iter()
                .any(|&(o, l)| o < n && n < o + l && bytes[o..n].iter().any(|&b| b != 0))
            {
                cut_seen += 1;
                assert!(
                    !s.clean(),
                    "{name}[..{n}] cuts a CTE but the summary is clean"
                );
                // In an intact file the cut is named as such. (After earlier damage the
                // decoder may be resynchronising when the file ends; then it is skipped
                // bytes, still not clean.)
                // (Nor can a raw file cut before its first whole CTE tell a cut CTE
                // from a writer header: nothing validates yet.)
                let first_whole = ctes.first().is_some_and(|&(o, l)| o + l <= n);
                assert!(
                    !full_clean
                        || !first_whole
                        || s.report
                            .issues
                            .iter()
                            .any(|i| i.kind == IssueKind::Truncated),
                    "{name}[..{n}]: no truncation reported"
                );
            }
        }
        assert!(cut_seen > 0, "{name}: no prefix cut a CTE");
    }
}

/// A tiny deterministic PRNG (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_byte_flips_lose_only_what_they_hit() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for (name, bytes) in samples() {
        let (_, full) = decode(&bytes);
        for round in 0..200 {
            let mut b = bytes.clone();
            let flips = 1 + (rng.next() % 4) as usize;
            for _ in 0..flips {
                let at = (rng.next() % b.len() as u64) as usize;
                b[at] ^= 1 << (rng.next() % 8);
            }
            let (_, got) = decode(&b);
            // Each flip can cost the packet it lands in and, when it breaks a record
            // descriptor or a segmented set, its neighbours; never more.
            let kept = got.iter().filter(|p| full.contains(p)).count();
            assert!(
                kept + flips * 4 >= full.len(),
                "{name} round {round}: {kept} of {} packets kept after {flips} flips",
                full.len()
            );
        }
    }
}

#[test]
fn damage_in_one_cte_costs_that_packet_only_and_is_reported_with_its_offset() {
    let cap = std::fs::read(common::captures_dir().join("tls12__zeek.pcap")).unwrap();
    for framing in [Framing::Raw, Framing::Rdw, Framing::Bdw] {
        let o = synth::Options {
            framing,
            header_len: 64,
            straddle: true,
            ..Default::default()
        };
        let mut trace = Vec::new();
        synth::synthesize(&cap[..], &mut trace, &o, None).unwrap();
        let (clean, full) = decode(&trace);
        assert!(clean.clean());
        // Find the 5th CTE with the scanner and break its format id.
        let mut s = zctrace::trace::Scanner::open(&trace[..], &Default::default()).unwrap();
        let mut off = 0;
        for _ in 0..5 {
            off = s.next_cte().unwrap().unwrap().offset as usize;
        }
        let mut bad = trace.clone();
        bad[off + 4] = 0x55;
        let (sum, got) = decode(&bad);
        assert_eq!(got.len(), full.len() - 1, "{framing:?}");
        assert!(got.iter().all(|p| full.contains(p)));
        assert!(!full[..4].iter().any(|p| !got.contains(p)));
        assert!(!sum.clean());
        let first = &sum.report.issues[0];
        assert_eq!(first.offset as usize, off, "{framing:?}: {first}");
        assert_eq!(first.kind, IssueKind::Skipped);
        assert!(sum.report.resyncs >= 1);
    }
}

#[test]
fn garbage_and_empty_input() {
    let (s, p) = decode(&[]);
    assert!(p.is_empty());
    assert_eq!(s.report.bytes_read, 0);
    let junk: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (s, p) = decode(&junk);
    assert!(p.is_empty());
    assert_eq!(
        s.report.bytes_skipped
            + s.report.padding_bytes
            + s.report.framing_bytes
            + s.report.header_bytes,
        junk.len() as u64
    );
    assert!(!s.clean());
}

fn synth_trace(capture: &str, o: &synth::Options) -> Vec<u8> {
    let cap = std::fs::read(common::captures_dir().join(capture)).unwrap();
    let mut trace = Vec::new();
    synth::synthesize(&cap[..], &mut trace, o, None).unwrap();
    trace
}

/// Offset of the n-th CTE (1-based) as the scanner finds it in an intact trace.
fn nth_cte(trace: &[u8], n: usize) -> usize {
    cte_extents(trace)[n - 1].0
}

#[test]
fn damaged_first_cte_of_a_straddled_raw_file_does_not_mislead_header_learning() {
    // Every record but the first starts in the middle of a CTE, so the first record's
    // first CTE is the only one at offset H; damage it.
    let o = synth::Options {
        framing: Framing::Raw,
        header_len: 64,
        straddle: true,
        ..Default::default()
    };
    let trace = synth_trace("tls12__zeek.pcap", &o);
    let (_, full) = decode(&trace);
    let mut bad = trace.clone();
    bad[nth_cte(&trace, 1) + 2] ^= 0x04; // data offset
    let (sum, got) = decode(&bad);
    assert_eq!(sum.layout.header_len, 64);
    assert_eq!(got.len(), full.len() - 1);
    assert_eq!(&got[..], &full[1..]);
    assert_eq!(sum.report.issues[0].offset, 64);
}

#[test]
fn a_broken_record_descriptor_costs_only_its_four_bytes() {
    let o = synth::Options {
        record_len: 1024,
        ..Default::default()
    };
    let trace = synth_trace("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap", &o);
    let (_, full) = decode(&trace);
    let mut bad = trace.clone();
    let third = 2 * (1024 + 4);
    bad[third..third + 4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    let (sum, got) = decode(&bad);
    assert_eq!(sum.layout.framing, Some(Framing::Rdw));
    assert_eq!(got, full, "the record body is salvaged");
    assert_eq!(sum.report.bytes_skipped, 4);
    assert_eq!(sum.report.issues[0].offset as usize, third);
    assert!(!sum.clean());
}

#[test]
fn a_bdw_file_whose_first_rdw_is_broken_is_still_bdw() {
    let o = synth::Options {
        framing: Framing::Bdw,
        spanned: Some(1000),
        straddle: true,
        max_cte: 512,
        ..Default::default()
    };
    let trace = synth_trace("ftps_explicit_auth_tls__zeek.pcap", &o);
    let (_, full) = decode(&trace);
    let mut bad = trace.clone();
    bad[7] ^= 0x10; // byte 3 of the first RDW
    let (sum, got) = decode(&bad);
    assert_eq!(sum.layout.framing, Some(Framing::Bdw));
    assert_eq!(got, full);
    assert_eq!(sum.report.bytes_skipped, 4);
}

#[test]
fn a_cte_length_damaged_upwards_is_not_taken_for_the_end_of_the_file() {
    let trace = synth_trace("tls12__zeek.pcap", &synth::Options::default());
    let (_, full) = decode(&trace);
    let mut bad = trace.clone();
    bad[nth_cte(&trace, 3)] |= 0x80; // length now beyond the end of the file
    let (sum, got) = decode(&bad);
    assert_eq!(got.len(), full.len() - 1, "only CTE 3's packet is lost");
    assert!(
        sum.report
            .issues
            .iter()
            .all(|i| i.kind != IssueKind::Truncated)
    );
}

#[test]
fn long_zero_fill_and_long_garbage_are_accounted_in_one_piece() {
    let trace = synth_trace("tls12__zeek.pcap", &synth::Options::default());
    let (_, full) = decode(&trace);
    // Zeros after the last record (a padded copy): padding, still clean.
    let mut padded = trace.clone();
    padded.resize(trace.len() + (3 << 20), 0);
    let (sum, got) = decode(&padded);
    assert_eq!(got, full);
    assert!(sum.clean(), "{:?}", sum.report.issues);
    assert_eq!(
        sum.report.padding_bytes,
        decode(&trace).0.report.padding_bytes + (3 << 20)
    );
    // Garbage after the last record: skipped, reported once with its offset and length
    // although it is searched a window at a time.
    let mut junk = trace.clone();
    let mut x = 0x9E37_79B9u32;
    junk.extend((0..(3 << 20)).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 24) as u8 | 0x80
    }));
    let (sum, got) = decode(&junk);
    assert_eq!(got, full);
    let skips: Vec<_> = sum
        .report
        .issues
        .iter()
        .filter(|i| i.kind == IssueKind::Skipped)
        .collect();
    // The broken "descriptor" and the rest: two reasons, no more.
    assert!(skips.len() <= 2, "{skips:?}");
    assert_eq!(skips[0].offset as usize, trace.len());
    assert_eq!(sum.report.bytes_skipped, 3 << 20);
    // None of it is passed off as writer headers.
    assert_eq!(
        sum.report.header_bytes,
        decode(&trace).0.report.header_bytes
    );
}

/// What one thread doing the scan and the assembly reports (the reference for the scan
/// running ahead on its own thread): the report, the counts and the pcapng of the
/// packets.
fn one_thread(bytes: &[u8]) -> (zctrace::trace::Report, zctrace::packet::Counts, Vec<u8>) {
    use zctrace::output::pcapng;
    let mut s = zctrace::trace::Scanner::open(bytes, &Default::default()).unwrap();
    let l = s.layout().clone();
    let section = pcapng::Section {
        source: "t".into(),
        framing: l.framing.map_or("?", |f| f.name()).into(),
        header_len: Some(l.header_len),
        component: l.component.clone(),
        system: l.system.clone(),
        parts: Vec::new(),
    };
    let d = DiscardTable::default();
    let mut w = pcapng::Writer::new(Vec::new(), &section).unwrap();
    let mut a = zctrace::packet::Assembler::new(Default::default());
    loop {
        let (c, r) = s.next_split().unwrap();
        let Some(c) = c else { break };
        a.push(&c, r, &mut |p| w.write(p, &d).unwrap());
    }
    a.finish(s.report_mut(), &mut |p| w.write(p, &d).unwrap());
    (s.into_report(), a.counts, w.finish().unwrap())
}

/// The scan runs ahead of the assembly on a thread of its own (`trace::ahead`): the
/// report, its issues in order, the counts and the packets are those of one thread, on
/// intact, cut and damaged files, including one with more issues than are kept.
#[test]
fn the_scan_ahead_reports_what_one_thread_reports() {
    let check = |what: &str, bytes: &[u8]| {
        let (report, counts, pcapng) = one_thread(bytes);
        let (sum, out) = {
            let d = DiscardTable::default();
            let o = convert::Options {
                output: Output::Pcapng,
                ..Default::default()
            };
            convert::convert(bytes, Vec::new(), "t", &o, &d, |_| {}).unwrap()
        };
        assert_eq!(sum.report, report, "{what}");
        assert_eq!(sum.counts, counts, "{what}");
        assert!(out == pcapng, "{what}: the pcapng differs");
        report.issues.len()
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut issues = 0;
    for (name, bytes) in samples() {
        for n in (0..=bytes.len()).step_by(97) {
            issues += check(&format!("{name}[..{n}]"), &bytes[..n]);
        }
        for round in 0..40 {
            let mut b = bytes.clone();
            for _ in 0..1 + rng.next() % 8 {
                let at = (rng.next() % b.len() as u64) as usize;
                b[at] ^= 1 << (rng.next() % 8);
            }
            issues += check(&format!("{name} flipped ({round})"), &b);
        }
    }
    assert!(
        issues > 500,
        "the files were damaged enough to report issues"
    );
    // A large trace damaged every few kilobytes: more issues than a report keeps, the
    // scan's and the assembly's mixed.
    let mut big = synth_trace(
        "ftp_ipv4_all_data_cmds_port_pasv__suricata.pcap",
        &synth::Options {
            framing: Framing::Rdw,
            header_len: 64,
            straddle: true,
            max_cte: 512,
            repeat: 40,
            ..Default::default()
        },
    );
    for at in (1000..big.len()).step_by(300) {
        big[at] ^= 0x5A;
    }
    let (report, _, _) = one_thread(&big);
    assert!(report.issues_not_kept > 0, "{} issues", report.issues.len());
    check("large, damaged", &big);
}

/// More issues than a report keeps, then a gap long enough to be reported in pieces
/// (over 1 MiB of garbage): the gap is one problem, as it would be among the issues
/// kept, and the scan running ahead reports what one thread reports.
#[test]
fn a_long_gap_beyond_the_kept_issues_is_one_problem() {
    let trace = synth_trace(
        "ftp_ipv4_all_data_cmds_port_pasv__suricata.pcap",
        &synth::Options {
            framing: Framing::Raw,
            header_len: 0,
            repeat: 8,
            ..Default::default()
        },
    );
    let mut s = zctrace::trace::Scanner::open(&trace[..], &Default::default()).unwrap();
    let mut ctes = Vec::new();
    while let Some(c) = s.next_cte().unwrap() {
        ctes.push(c.bytes.to_vec());
    }
    assert!(ctes.len() > 1100, "{} CTEs", ctes.len());
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let build = |garbage: usize, rng: &mut Rng| {
        let mut b = Vec::new();
        for c in &ctes {
            b.extend_from_slice(c);
            // One byte that is no CTE: one skipped-bytes issue each.
            b.push(1);
        }
        b.extend((0..garbage).map(|_| 1 + (rng.next() % 255) as u8));
        b.extend_from_slice(&ctes[0]);
        b
    };
    let problems = |r: &zctrace::trace::Report| r.issues.len() as u64 + r.issues_not_kept;
    let short = build(100, &mut rng);
    let long = build(3 << 20, &mut rng);
    let (short_report, _, _) = one_thread(&short);
    let (long_report, _, _) = one_thread(&long);
    assert!(short_report.issues_not_kept > 0);
    assert_eq!(problems(&long_report), problems(&short_report));
    assert_eq!(long_report.losses, short_report.losses);
    assert_eq!(
        long_report.bytes_skipped - short_report.bytes_skipped,
        (3 << 20) - 100
    );
    for (what, bytes) in [("short gap", &short), ("long gap", &long)] {
        let d = DiscardTable::default();
        let (sum, _) =
            convert::convert(&bytes[..], Vec::new(), "t", &Default::default(), &d, |_| {}).unwrap();
        assert_eq!(sum.report, one_thread(bytes).0, "{what}");
    }
}
