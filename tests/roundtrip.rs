//! Round trips: every shared capture -> synthesized trace (every framing, writer headers
//! 0/64/100, straddling, VBS spanning, segmentation, abbreviation, OSAENTA, discards,
//! short PTHDRs, EE) -> zctrace -> pcapng, read back with pcap-parser. Packet for
//! packet: same bytes, nanosecond times, captured and original lengths, interface
//! names, directions and comments; every trace byte accounted for.

mod common;

use std::net::IpAddr;

use zctrace::convert::{self, Output};
use zctrace::packet::TimeSource;
use zctrace::synth::{self, Expected};
use zctrace::trace::{DiscardCode, DiscardTable, Framing};

fn configs() -> Vec<(String, synth::Options)> {
    let mut v = Vec::new();
    for framing in [Framing::Raw, Framing::Rdw, Framing::Bdw] {
        for header_len in [0, 64, 100] {
            v.push((
                format!("{}-h{header_len}", framing.name()),
                synth::Options {
                    framing,
                    header_len,
                    ..Default::default()
                },
            ));
        }
        v.push((
            format!("{}-straddle", framing.name()),
            synth::Options {
                framing,
                header_len: 64,
                straddle: true,
                ..Default::default()
            },
        ));
        v.push((
            format!("{}-seg512-straddle", framing.name()),
            synth::Options {
                framing,
                header_len: 100,
                straddle: true,
                max_cte: 512,
                ..Default::default()
            },
        ));
    }
    let base = synth::Options::default;
    v.push((
        "rdw-spanned".into(),
        synth::Options {
            spanned: Some(1000),
            straddle: true,
            ..base()
        },
    ));
    v.push((
        "bdw-spanned-seg512".into(),
        synth::Options {
            framing: Framing::Bdw,
            spanned: Some(700),
            max_cte: 512,
            ..base()
        },
    ));
    v.push((
        "seg512".into(),
        synth::Options {
            max_cte: 512,
            ..base()
        },
    ));
    v.push((
        "abbrev200".into(),
        synth::Options {
            abbrev: Some(200),
            ..base()
        },
    ));
    v.push((
        "osaenta".into(),
        synth::Options {
            osaenta: true,
            discard_every: Some(4),
            ..base()
        },
    ));
    v.push((
        "discards".into(),
        synth::Options {
            discard_every: Some(3),
            discard: vec![(1, 4114)],
            ..base()
        },
    ));
    v.push((
        "short-pthdr".into(),
        synth::Options {
            pth_len: 0x58,
            ..base()
        },
    ));
    v.push((
        "smc".into(),
        synth::Options {
            format_id: 8,
            straddle: true,
            ..base()
        },
    ));
    v.push((
        "ee-raw".into(),
        synth::Options {
            format_id: 6,
            framing: Framing::Raw,
            header_len: 64,
            ..base()
        },
    ));
    v
}

fn synthesize(cap: &[u8], o: &synth::Options) -> (Vec<u8>, Vec<Expected>) {
    let mut trace = Vec::new();
    let mut exp = Vec::new();
    synth::synthesize(cap, &mut trace, o, Some(&mut exp)).expect("synthesize");
    (trace, exp)
}

fn check(name: &str, trace: &[u8], exp: &[Expected], o: &synth::Options) {
    let discards = DiscardTable::default();
    let copts = convert::Options::default();
    let (sum, out) =
        convert::convert(trace, Vec::new(), name, &copts, &discards, |_| {}).expect("convert");
    assert!(
        sum.clean(),
        "{name}: not clean:\n{}",
        sum.render(name, &discards)
    );
    assert_eq!(sum.report.unaccounted(), 0, "{name}");
    assert_eq!(
        sum.layout.header_len, o.header_len,
        "{name}: writer header length learned"
    );
    let got = common::read(&out);
    assert_eq!(got.packets.len(), exp.len(), "{name}: packet count");
    for (i, (p, e)) in got.packets.iter().zip(exp).enumerate() {
        let ctx = format!("{name}: packet {}", i + 1);
        let iface = &got.ifaces[p.iface];
        assert_eq!(p.data, e.data, "{ctx}: bytes");
        assert_eq!(p.ts_ns, e.time_ns, "{ctx}: time");
        assert_eq!(p.caplen as usize, e.data.len(), "{ctx}: captured length");
        assert_eq!(p.origlen, e.orig_len, "{ctx}: original length");
        assert_eq!(iface.name, e.interface, "{ctx}: interface");
        assert_eq!(iface.tsresol, Some(9), "{ctx}: if_tsresol");
        assert_eq!(
            iface.linktype,
            match (o.osaenta, o.format_id) {
                (true, _) => 1,
                // SMC records: kept whole on a user link type.
                (false, 8) => 147,
                _ => 101,
            },
            "{ctx}: link type"
        );
        assert_eq!(
            p.flags,
            Some(if e.outbound { 2 } else { 1 }),
            "{ctx}: direction"
        );
        let want_discard = (e.discard != 0).then(|| discards.comment(DiscardCode(e.discard)));
        let have_discard = p.comments.iter().find(|c| c.starts_with("discarded: "));
        assert_eq!(
            have_discard,
            want_discard.as_ref(),
            "{ctx}: discard comment"
        );
        let abbreviated = p.comments.iter().any(|c| c.starts_with("abbreviated: "));
        assert_eq!(
            abbreviated,
            (e.data.len() as u32) < e.orig_len,
            "{ctx}: abbreviated comment"
        );
        let reassembled = format!("reassembled from {} trace records", e.segments);
        assert_eq!(
            p.comments.contains(&reassembled),
            e.segments > 1,
            "{ctx}: segments comment {:?}",
            p.comments
        );
    }
    let recv: u64 = got.isbs.iter().filter_map(|s| s.recv).sum();
    assert_eq!(recv as usize, exp.len(), "{name}: ISB packet counts");
}

#[test]
fn every_capture_round_trips_under_every_setting() {
    let caps = common::captures();
    assert!(
        caps.len() >= 40,
        "shared captures missing: {}",
        common::captures_dir().display()
    );
    let configs = configs();
    let mut runs = 0;
    let mut seg_packets = 0;
    let mut discard_packets = 0;
    for cap in &caps {
        let bytes = std::fs::read(cap).unwrap();
        let stem = cap.file_stem().unwrap().to_string_lossy();
        for (cname, o) in &configs {
            let (trace, exp) = synthesize(&bytes, o);
            seg_packets += exp.iter().filter(|e| e.segments > 1).count();
            discard_packets += exp.iter().filter(|e| e.discard != 0).count();
            check(&format!("{stem} [{cname}]"), &trace, &exp, o);
            runs += 1;
        }
    }
    // The matrix really exercised what it claims to.
    assert_eq!(runs, caps.len() * configs.len());
    assert!(seg_packets > 500, "segmented packets: {seg_packets}");
    assert!(
        discard_packets > 1000,
        "discarded packets: {discard_packets}"
    );
}

#[test]
fn buffer_time_and_leap_seconds_options() {
    let cap = std::fs::read(common::captures_dir().join("tls12__zeek.pcap")).unwrap();
    let o = synth::Options {
        leap_seconds: 27,
        buffer_delay_ns: 2500,
        ..Default::default()
    };
    let (trace, exp) = synthesize(&cap, &o);
    let d = DiscardTable::default();
    for (time, leap, shift) in [
        (TimeSource::Capture, 27, 0i64),
        (TimeSource::Buffer, 27, 2500),
        (TimeSource::Capture, 0, 27_000_000_000),
    ] {
        let mut c = convert::Options::default();
        c.packet.time = time;
        c.packet.leap_seconds = leap;
        let (_, out) = convert::convert(&trace[..], Vec::new(), "t", &c, &d, |_| {}).unwrap();
        let got = common::read(&out);
        assert_eq!(got.packets.len(), exp.len());
        for (p, e) in got.packets.iter().zip(&exp) {
            assert_eq!(p.ts_ns, e.time_ns + shift, "{time:?} leap {leap}");
        }
    }
}

#[test]
fn hosts_decide_direction() {
    let cap = std::fs::read(
        common::captures_dir().join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap"),
    )
    .unwrap();
    let (_, exp_default) = synthesize(&cap, &synth::Options::default());
    let first_src: IpAddr = {
        let d = &exp_default[0].data;
        IpAddr::from([d[12], d[13], d[14], d[15]])
    };
    for e in &exp_default {
        let src = IpAddr::from([e.data[12], e.data[13], e.data[14], e.data[15]]);
        assert_eq!(e.outbound, src == first_src);
    }
    assert!(exp_default.iter().any(|e| !e.outbound));
}

#[test]
fn libpcap_output_wraps_raw_ip_in_ethernet() {
    let cap = std::fs::read(common::captures_dir().join("ipv6_ssh_dns_tcp__arkime.pcap")).unwrap();
    let (trace, exp) = synthesize(&cap, &synth::Options::default());
    let c = convert::Options {
        output: Output::Libpcap,
        ..Default::default()
    };
    let (_, out) = convert::convert(
        &trace[..],
        Vec::new(),
        "t",
        &c,
        &DiscardTable::default(),
        |_| {},
    )
    .unwrap();
    let got = common::read(&out);
    assert_eq!(got.legacy_linktype, Some(1));
    assert_eq!(got.packets.len(), exp.len());
    for (p, e) in got.packets.iter().zip(&exp) {
        assert_eq!(&p.data[14..], &e.data[..]);
        let et = u16::from_be_bytes([p.data[12], p.data[13]]);
        assert_eq!(et, if e.data[0] >> 4 == 6 { 0x86DD } else { 0x0800 });
        assert_eq!(p.origlen, e.orig_len + 14);
        assert_eq!(p.ts_ns, e.time_ns);
    }
}

#[test]
fn filters_select_packets() {
    let cap = std::fs::read(
        common::captures_dir().join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap"),
    )
    .unwrap();
    let o = synth::Options {
        discard_every: Some(5),
        ..Default::default()
    };
    let (trace, exp) = synthesize(&cap, &o);
    let d = DiscardTable::default();
    let run = |f: zctrace::net::Filter| {
        let c = convert::Options {
            filter: f,
            ..Default::default()
        };
        let (s, out) = convert::convert(&trace[..], Vec::new(), "t", &c, &d, |_| {}).unwrap();
        let got = common::read(&out);
        assert_eq!(s.written as usize, got.packets.len());
        got.packets
    };
    let port21 = run(zctrace::net::Filter {
        ports: vec![21],
        ..Default::default()
    });
    let want = exp
        .iter()
        .filter(|e| {
            let ihl = (e.data[0] & 15) as usize * 4;
            let sp = u16::from_be_bytes([e.data[ihl], e.data[ihl + 1]]);
            let dp = u16::from_be_bytes([e.data[ihl + 2], e.data[ihl + 3]]);
            e.data[9] == 6 && (sp == 21 || dp == 21)
        })
        .count();
    assert!(want > 10);
    assert_eq!(port21.len(), want);
    let disc = run(zctrace::net::Filter {
        discarded_only: true,
        ..Default::default()
    });
    assert_eq!(disc.len(), exp.iter().filter(|e| e.discard != 0).count());
    let t0 = exp[10].time_ns;
    let late = run(zctrace::net::Filter {
        from_ns: Some(t0),
        ..Default::default()
    });
    assert_eq!(late.len(), exp.iter().filter(|e| e.time_ns >= t0).count());
    let none = run(zctrace::net::Filter {
        interfaces: vec!["NOSUCH".into()],
        ..Default::default()
    });
    assert!(none.is_empty());
}

#[test]
fn smc_records_keep_their_own_interface_and_are_counted_when_left_out() {
    let cap = std::fs::read(common::captures_dir().join("tls12__zeek.pcap")).unwrap();
    let o = synth::Options {
        format_id: 8,
        ..Default::default()
    };
    let (trace, exp) = synthesize(&cap, &o);
    let d = DiscardTable::default();
    // pcapng: every record, whole, on LINKTYPE_USER0 (checked packet by packet above).
    let (sum, out) = convert::convert(
        &trace[..],
        Vec::new(),
        "smc",
        &Default::default(),
        &d,
        |_| {},
    )
    .unwrap();
    assert_eq!(sum.written as usize, exp.len());
    assert_eq!(common::read(&out).ifaces[0].linktype, 147);
    // Classic pcap (Ethernet only): none written, all counted, and the summary says so.
    let c = convert::Options {
        output: Output::Libpcap,
        ..Default::default()
    };
    let (sum, _) = convert::convert(&trace[..], Vec::new(), "smc", &c, &d, |_| {}).unwrap();
    assert_eq!((sum.written, sum.left_out as usize), (0, exp.len()));
    assert!(sum.render("smc", &d).contains(&format!(
        "{} SMC or data-trace record(s) left out",
        exp.len()
    )));
    assert!(sum.clean());
}

#[test]
fn osaenta_records_that_are_not_ethernet_are_reported_and_kept() {
    // A classic pcap (Ethernet) with a good frame and one whose type/length field is an
    // 802.3 length of 1500 in a 60-byte frame.
    let mut good = vec![0xFF; 6];
    good.extend([2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    good.extend([0u8; 46]);
    let mut bad = good.clone();
    bad[12..14].copy_from_slice(&1500u16.to_be_bytes());
    let mut cap = Vec::new();
    cap.extend(0xA1B2_C3D4u32.to_le_bytes());
    cap.extend(2u16.to_le_bytes());
    cap.extend(4u16.to_le_bytes());
    cap.extend([0; 8]);
    cap.extend(65535u32.to_le_bytes());
    cap.extend(1u32.to_le_bytes());
    for (i, f) in [&good, &bad].iter().enumerate() {
        cap.extend((1_700_000_000u32 + i as u32).to_le_bytes());
        cap.extend(0u32.to_le_bytes());
        cap.extend((f.len() as u32).to_le_bytes());
        cap.extend((f.len() as u32).to_le_bytes());
        cap.extend(f.iter());
    }
    let o = synth::Options {
        osaenta: true,
        ..Default::default()
    };
    let (trace, exp) = synthesize(&cap, &o);
    assert_eq!(exp.len(), 2);
    let d = DiscardTable::default();
    let (sum, out) = convert::convert(
        &trace[..],
        Vec::new(),
        "osa",
        &Default::default(),
        &d,
        |_| {},
    )
    .unwrap();
    let got = common::read(&out);
    assert_eq!(got.packets.len(), 2, "both records are written");
    assert_eq!(got.packets[1].data, bad, "as they are");
    assert!(got.packets[0].comments.is_empty());
    assert!(
        got.packets[1].comments[0].starts_with("not an Ethernet frame: type/length X'05DC'"),
        "{:?}",
        got.packets[1].comments
    );
    assert_eq!(sum.counts.not_ethernet, 1);
    let w: Vec<_> = sum
        .report
        .issues
        .iter()
        .filter(|i| i.kind == zctrace::trace::IssueKind::Warning)
        .collect();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].message
            .contains("does not look like an Ethernet frame")
    );
}

/// The exported-PDU tags in front of a data-trace frame: (tags, payload).
fn split_exported_pdu(frame: &[u8]) -> (Vec<(u16, Vec<u8>)>, &[u8]) {
    let mut tags = Vec::new();
    let mut at = 0;
    while at + 4 <= frame.len() {
        let t = u16::from_be_bytes([frame[at], frame[at + 1]]);
        let l = usize::from(u16::from_be_bytes([frame[at + 2], frame[at + 3]]));
        at += 4;
        if t == 0 {
            return (tags, &frame[at..]);
        }
        tags.push((t, frame[at..at + l].to_vec()));
        at += l;
    }
    panic!("no end-of-options tag");
}

#[test]
fn data_trace_round_trips_every_capture() {
    let d = DiscardTable::default();
    let mut records = 0;
    for cap in common::captures() {
        let bytes = std::fs::read(&cap).unwrap();
        let name = cap.file_name().unwrap().to_string_lossy().into_owned();
        let o = synth::Options {
            data_trace: true,
            straddle: true,
            max_cte: 1000,
            ..Default::default()
        };
        let (trace, exp) = synthesize(&bytes, &o);
        let (sum, out) = convert::convert(
            &trace[..],
            Vec::new(),
            &name,
            &Default::default(),
            &d,
            |_| {},
        )
        .unwrap();
        assert!(sum.clean(), "{name}: {}", sum.render(&name, &d));
        let got = common::read(&out);
        assert_eq!(got.packets.len(), exp.len(), "{name}");
        for (i, (p, e)) in got.packets.iter().zip(&exp).enumerate() {
            let ctx = format!("{name} record {}", i + 1);
            let iface = &got.ifaces[p.iface];
            assert_eq!(iface.linktype, 252, "{ctx}: LINKTYPE_WIRESHARK_UPPER_PDU");
            assert_eq!(iface.name, "datatrace", "{ctx}");
            let (tags, payload) = split_exported_pdu(&p.data);
            assert_eq!(payload, &e.data[..], "{ctx}: bytes");
            assert_eq!(p.ts_ns, e.time_ns, "{ctx}: time");
            assert_eq!(
                p.flags,
                Some(if e.outbound { 2 } else { 1 }),
                "{ctx}: direction"
            );
            let tag_len = (p.data.len() - payload.len()) as u32;
            assert_eq!(p.origlen - tag_len, e.orig_len, "{ctx}: original length");
            // A port table and both ports are always there for TCP and UDP sockets.
            let kinds: Vec<u16> = tags.iter().map(|t| t.0).collect();
            assert!(kinds.starts_with(&[14, 32]), "{ctx}: {kinds:?}");
            assert!(
                kinds.contains(&25) && kinds.contains(&26),
                "{ctx}: {kinds:?}"
            );
            records += 1;
        }
    }
    assert!(records > 1000, "only {records} data-trace records");
}
