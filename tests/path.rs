//! Adapter and stack side by side: every shared capture synthesized as a pair (an
//! OSAENTA trace and a packet trace of the same packets, chosen packets dropped on
//! either side, a fixed adapter-stack latency), merged with `convert::merge`, and
//! path.csv checked packet for packet against what the synthesizer was told: each
//! drop found at the right side with the right code, the latency exact, both
//! sightings of a packet paired with each other, and no packet reported lost that
//! was not.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};

use zctrace::analyze::path::PathRow;
use zctrace::convert;
use zctrace::synth::{self, Expected};
use zctrace::trace::DiscardTable;

const DELAY_NS: i64 = 37_000;
const OSA_CODES: [u16; 3] = [3, 17, 4095];
const STACK_CODES: [u16; 3] = [4114, 8200, 12300];

/// Drops: every 7th frame (from 3) by the adapter, every 11th (from 5) by the stack,
/// unless the adapter already dropped it.
fn drops(frames: u64) -> synth::Pair {
    let mut p = synth::Pair {
        delay_ns: DELAY_NS,
        ..Default::default()
    };
    for f in 1..=frames {
        if f % 7 == 3 {
            p.drop_osa.push((f, OSA_CODES[(f / 7) as usize % 3]));
        } else if f % 11 == 5 {
            p.drop_stack.push((f, STACK_CODES[(f / 11) as usize % 3]));
        }
    }
    p
}

/// Merges traces with path correlation (1 s window); the merge and path.csv's rows.
fn merge_rows(
    inputs: &[(&str, &[u8])],
    opts: &convert::Options,
) -> (convert::Merged, Vec<PathRow>) {
    let mut rows = Vec::new();
    let mut sink = |r: &PathRow| {
        rows.push(r.clone());
        Ok(())
    };
    let (m, _) = convert::merge(
        inputs.iter().map(|&(n, b)| (n.to_string(), b)).collect(),
        std::io::sink(),
        None,
        Some(convert::PathOutput {
            rows: &mut sink,
            window_ns: 1_000_000_000,
            utc_offset: None,
        }),
        opts,
        &DiscardTable::default(),
        |_| {},
    )
    .unwrap();
    (m, rows)
}

struct Run {
    rows: Vec<PathRow>,
    /// Merged frame number -> (is the adapter's, capture frame).
    frames: Vec<(bool, u64)>,
    stack: Vec<Expected>,
    osa: Vec<Expected>,
    stats: zctrace::analyze::path::Stats,
}

fn run(cap: &[u8], pair: &synth::Pair) -> Run {
    let (so, oo) = pair.options(&synth::Options::default());
    let mut stack_trace = Vec::new();
    let mut osa_trace = Vec::new();
    let mut stack = Vec::new();
    let mut osa = Vec::new();
    synth::synthesize(cap, &mut stack_trace, &so, Some(&mut stack)).expect("stack trace");
    synth::synthesize(cap, &mut osa_trace, &oo, Some(&mut osa)).expect("OSAENTA trace");
    let mut rows = Vec::new();
    let mut sink = |r: &PathRow| {
        rows.push(r.clone());
        Ok(())
    };
    let (m, out) = convert::merge(
        vec![
            ("stack".to_string(), &stack_trace[..]),
            ("osa".to_string(), &osa_trace[..]),
        ],
        Vec::new(),
        None,
        Some(convert::PathOutput {
            rows: &mut sink,
            window_ns: 1_000_000_000,
            utc_offset: None,
        }),
        &convert::Options::default(),
        &DiscardTable::default(),
        |_| {},
    )
    .expect("merge");
    assert!(m.clean());
    // Merged frames back to capture frames, by time and bytes (identical twins in
    // written order).
    let got = common::read(&out);
    let index = |v: &[Expected]| {
        let mut m = HashMap::<(i64, Vec<u8>), VecDeque<u64>>::new();
        for e in v {
            m.entry((e.time_ns, e.data.clone()))
                .or_default()
                .push_back(e.frame);
        }
        m
    };
    let (mut by_osa, mut by_stack) = (index(&osa), index(&stack));
    let frames = got
        .packets
        .iter()
        .map(|p| {
            let is_osa = got.ifaces[p.iface].linktype == 1;
            let m = if is_osa { &mut by_osa } else { &mut by_stack };
            let f = m
                .get_mut(&(p.ts_ns, p.data.clone()))
                .and_then(|q| q.pop_front())
                .expect("every merged frame is a synthesized packet");
            (is_osa, f)
        })
        .collect();
    assert_eq!(got.packets.len(), osa.len() + stack.len());
    assert!(
        got.packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns),
        "merged output in time order"
    );
    assert_eq!(m.out_of_order, 0);
    Run {
        rows,
        frames,
        stack,
        osa,
        stats: m.path.expect("path statistics"),
    }
}

#[test]
fn synthesized_pairs_find_every_drop_at_its_side_with_its_code_and_latency() {
    let caps = common::captures();
    assert!(caps.len() >= 30, "shared captures missing");
    let mut total_drops = (0, 0);
    let mut ran = 0;
    let n_caps = caps.len();
    for cap_path in caps {
        let name = cap_path.file_name().unwrap().to_string_lossy().into_owned();
        let cap = std::fs::read(&cap_path).unwrap();
        // Frame count: the OSAENTA trace writes every frame it can (ARP too).
        let (_, probe) = synth::Pair::default().options(&synth::Options::default());
        let mut all = Vec::new();
        if synth::synthesize(&cap[..], std::io::sink(), &probe, Some(&mut all)).is_err() {
            continue;
        }
        let frames = all.iter().map(|e| e.frame).max().unwrap_or(0);
        ran += 1;
        let pair = drops(frames);
        let r = run(&cap, &pair);
        let osa_drop: BTreeMap<u64, u16> = pair.drop_osa.iter().copied().collect();
        let stack_drop: BTreeMap<u64, u16> = pair.drop_stack.iter().copied().collect();
        let in_stack: BTreeMap<u64, &Expected> = r.stack.iter().map(|e| (e.frame, e)).collect();
        let in_osa: BTreeMap<u64, &Expected> = r.osa.iter().map(|e| (e.frame, e)).collect();

        let mut seen = BTreeMap::<u64, u32>::new();
        for row in &r.rows {
            let ctx = format!("{name}: {row:?}");
            let fo = row.no_osa.map(|n| r.frames[n as usize - 1]);
            let fs = row.no_stack.map(|n| r.frames[n as usize - 1]);
            assert!(fo.is_none_or(|f| f.0), "{ctx}: no_osa is an adapter frame");
            assert!(fs.is_none_or(|f| !f.0), "{ctx}: no_stack is a stack frame");
            let frame = match (fo, fs) {
                (Some(o), Some(s)) => {
                    assert_eq!(o.1, s.1, "{ctx}: paired sightings of different packets");
                    o.1
                }
                (Some(o), None) => o.1,
                (None, Some(s)) => s.1,
                (None, None) => panic!("{ctx}: row without a sighting"),
            };
            *seen.entry(frame).or_default() += 1;
            let outbound = in_stack
                .get(&frame)
                .or(in_osa.get(&frame))
                .is_some_and(|e| e.outbound);
            assert_eq!(row.direction, if outbound { "out" } else { "in" }, "{ctx}");
            // (A stack drop planned for a frame the packet trace cannot hold, such as
            // ARP, has nothing to drop.)
            let (want_where, want_code) = if let Some(&c) = osa_drop.get(&frame) {
                ("osa-dropped", Some(c))
            } else if let Some(&c) = stack_drop
                .get(&frame)
                .filter(|_| in_stack.contains_key(&frame))
            {
                ("stack-dropped", Some(c))
            } else if in_stack.contains_key(&frame) {
                ("delivered", None)
            } else {
                // Frames the packet trace cannot hold (ARP and other non-IP frames):
                // on the wire only, inbound as the adapter records them.
                ("wire-only", None)
            };
            assert_eq!(row.where_, want_where, "{ctx}: where");
            assert_eq!(row.code, want_code, "{ctx}: code");
            assert_eq!(row.discard.is_empty(), want_code.is_none(), "{ctx}");
            // Who saw it: an adapter drop never reaches the stack inbound; a stack
            // drop never reaches the adapter outbound.
            let want_osa = !(want_where == "stack-dropped" && outbound);
            let want_stack =
                in_stack.contains_key(&frame) && (outbound || want_where != "osa-dropped");
            assert_eq!(fo.is_some(), want_osa, "{ctx}: adapter sighting");
            assert_eq!(fs.is_some(), want_stack, "{ctx}: stack sighting");
            if want_osa && want_stack {
                assert_eq!(row.latency_ns, Some(DELAY_NS), "{ctx}: latency");
            } else {
                assert_eq!(row.latency_ns, None, "{ctx}: latency");
            }
        }
        // Every packet of either trace is in exactly one row.
        let frames_written: std::collections::BTreeSet<u64> =
            in_stack.keys().chain(in_osa.keys()).copied().collect();
        assert_eq!(
            seen.keys()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            frames_written,
            "{name}: rows cover every packet"
        );
        assert!(seen.values().all(|&n| n == 1), "{name}: one row per packet");
        let places = &r.stats.places;
        total_drops.0 += places.get("osa-dropped").copied().unwrap_or(0);
        total_drops.1 += places.get("stack-dropped").copied().unwrap_or(0);
        assert_eq!(places.get("stack-only"), None, "{name}: no false losses");
        for l in [r.stats.latency_in, r.stats.latency_out] {
            if l.count > 0 {
                assert_eq!(
                    (l.min, l.max, l.mean()),
                    (DELAY_NS, DELAY_NS, Some(DELAY_NS))
                );
            }
        }
        assert_eq!(
            r.stats.latency_in.count + r.stats.latency_out.count,
            r.stats.matched,
            "{name}"
        );
    }
    assert_eq!(ran, n_caps, "every capture makes a pair");
    assert!(
        total_drops.0 > 50 && total_drops.1 > 30,
        "drops exercised: {total_drops:?}"
    );
}

#[test]
fn retransmissions_and_repeats_pair_with_their_own_sighting() {
    // tcp_fast_retransmit repeats segments with the same sequence numbers: each
    // sighting must pair with its own twin, not the first one's.
    let cap = std::fs::read(common::captures_dir().join("tcp_fast_retransmit__zeek.pcap")).unwrap();
    let r = run(
        &cap,
        &synth::Pair {
            delay_ns: DELAY_NS,
            ..Default::default()
        },
    );
    assert!(r.rows.len() > 10);
    for row in &r.rows {
        let (o, s) = (row.no_osa.unwrap(), row.no_stack.unwrap());
        assert_eq!(
            r.frames[o as usize - 1].1,
            r.frames[s as usize - 1].1,
            "{row:?}"
        );
        assert_eq!(row.where_, "delivered");
        assert_eq!(row.latency_ns, Some(DELAY_NS));
    }
}

#[test]
fn sightings_further_apart_than_the_window_stay_unpaired() {
    let cap = std::fs::read(common::captures_dir().join("tls12__zeek.pcap")).unwrap();
    let (so, oo) = synth::Pair {
        delay_ns: 2_000_000_000,
        ..Default::default()
    }
    .options(&synth::Options::default());
    let mut a = Vec::new();
    let mut b = Vec::new();
    synth::synthesize(&cap[..], &mut a, &so, None).unwrap();
    synth::synthesize(&cap[..], &mut b, &oo, None).unwrap();
    let (m, rows) = merge_rows(&[("s", &a), ("o", &b)], &convert::Options::default());
    let stats = m.path.unwrap();
    assert_eq!(stats.matched, 0);
    // Inbound adapter-only sightings are wire-only, outbound stack-only ones
    // stack-only; the stack's inbound ones were delivered, the adapter's outbound ones
    // too (it sent them).
    assert!(rows.iter().all(|r| r.latency_ns.is_none()));
    assert_eq!(rows.len() as u64, stats.osa + stats.stack);
    assert!(stats.places.get("wire-only").copied().unwrap_or(0) > 0);
    assert!(stats.places.get("stack-only").copied().unwrap_or(0) > 0);
}

/// An IPv4 TCP packet from 10.0.0.1:1025 to 10.0.0.2:21 with the given checksums.
fn tcp_packet(ip_sum: u16, tcp_sum: u16, payload: &[u8]) -> Vec<u8> {
    let len = 40 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (len >> 8) as u8,
        len as u8,
        0x12,
        0x34,
        0x40,
        0,
        64,
        6,
    ];
    p.extend(ip_sum.to_be_bytes());
    p.extend([10, 0, 0, 1, 10, 0, 0, 2]);
    p.extend(1025u16.to_be_bytes());
    p.extend(21u16.to_be_bytes());
    p.extend(1000u32.to_be_bytes());
    p.extend(2000u32.to_be_bytes());
    p.extend([0x50, 0x18, 0xFF, 0xFF]);
    p.extend(tcp_sum.to_be_bytes());
    p.extend([0, 0]);
    p.extend(payload);
    p
}

fn ethernet(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend(ip);
    f
}

fn push_all(sightings: &[(zctrace::analyze::path::Side, i64, Vec<u8>)]) -> Vec<PathRow> {
    use zctrace::analyze::path::{Correlator, Side, Sighting};
    let d = DiscardTable::default();
    let mut c = Correlator::new(1_000_000_000, None);
    let mut rows = Vec::new();
    let mut out = |r: &PathRow| {
        rows.push(r.clone());
        Ok(())
    };
    for (i, (side, t, data)) in sightings.iter().enumerate() {
        let link = match side {
            Side::Osa => zctrace::packet::Link::Ethernet,
            Side::Stack => zctrace::packet::Link::Raw,
        };
        let view = zctrace::net::view(link, data, data.len() as u32);
        let s = Sighting {
            side: *side,
            frame: i as u64 + 1,
            time_ns: *t,
            outbound: true,
            view: &view,
            discard: zctrace::trace::DiscardCode(0),
            system: 0,
        };
        c.push(&s, &d, &mut out).unwrap();
    }
    c.finish(&d, &mut out).unwrap();
    rows
}

#[test]
fn checksum_offload_does_not_keep_the_two_sightings_apart() {
    use zctrace::analyze::path::Side;
    // The stack traces an outbound packet before the adapter fills in its checksums.
    let stack = tcp_packet(0, 0, b"USER x\r\n");
    let wire = ethernet(&tcp_packet(0xBEEF, 0xCAFE, b"USER x\r\n"));
    let rows = push_all(&[(Side::Stack, 1_000, stack), (Side::Osa, 6_000, wire)]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].where_, "delivered");
    assert_eq!(rows[0].latency_ns, Some(5_000));
    assert_eq!((rows[0].no_stack, rows[0].no_osa), (Some(1), Some(2)));
}

#[test]
fn same_headers_other_bytes_pair_by_content() {
    use zctrace::analyze::path::Side;
    // Two stack packets whose headers agree but whose payloads differ; the adapter
    // sees them in the other order: each pairs with its own bytes.
    let a = tcp_packet(0, 0, b"AAAA");
    let b = tcp_packet(0, 0, b"BBBB");
    let rows = push_all(&[
        (Side::Stack, 1_000, a.clone()),
        (Side::Stack, 2_000, b.clone()),
        (Side::Osa, 3_000, ethernet(&b)),
        (Side::Osa, 4_000, ethernet(&a)),
    ]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].no_stack, rows[0].no_osa), (Some(1), Some(4)));
    assert_eq!((rows[1].no_stack, rows[1].no_osa), (Some(2), Some(3)));
    assert_eq!(rows[0].latency_ns, Some(3_000));
    assert_eq!(rows[1].latency_ns, Some(1_000));
}

#[test]
fn a_filter_hiding_one_view_does_not_turn_delivered_packets_into_losses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let stack = std::fs::read(root.join("pair_stack.trace")).unwrap();
    let osa = std::fs::read(root.join("pair_osa.trace")).unwrap();
    let places = |interfaces: Vec<String>| {
        let opts = convert::Options {
            filter: zctrace::net::Filter {
                interfaces,
                ..Default::default()
            },
            ..Default::default()
        };
        merge_rows(&[("s", &stack), ("o", &osa)], &opts).1
    };
    let all = places(Vec::new());
    let osa_only = places(vec!["EZANTAOSA1".into()]);
    // Every packet the adapter saw keeps its place; the stack's frame numbers are
    // empty because those frames are not in the output.
    let seen_by_osa: Vec<(&str, Option<u16>)> = all
        .iter()
        .filter(|r| r.no_osa.is_some())
        .map(|r| (r.where_, r.code))
        .collect();
    let got: Vec<(&str, Option<u16>)> = osa_only.iter().map(|r| (r.where_, r.code)).collect();
    assert_eq!(got, seen_by_osa);
    assert!(
        osa_only
            .iter()
            .all(|r| r.no_stack.is_none() && r.no_osa.is_some())
    );
    assert!(osa_only.iter().any(|r| r.where_ == "stack-dropped"));
    assert!(osa_only.iter().all(|r| r.where_ != "wire-only"));
}

#[test]
fn repeated_pairs_with_varied_flows_still_pair_one_to_one() {
    // synth --repeat --vary-flows moves the ephemeral ports of each repetition; the
    // OSAENTA half (Ethernet frames) must move them the same way.
    let cap = std::fs::read(
        common::captures_dir().join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap"),
    )
    .unwrap();
    let base = synth::Options {
        repeat: 3,
        vary_flows: true,
        ..Default::default()
    };
    let (so, oo) = synth::Pair {
        delay_ns: DELAY_NS,
        ..Default::default()
    }
    .options(&base);
    let mut a = Vec::new();
    let mut b = Vec::new();
    let sa = synth::synthesize(&cap[..], &mut a, &so, None).unwrap();
    let sb = synth::synthesize(&cap[..], &mut b, &oo, None).unwrap();
    assert_eq!(sa.packets, sb.packets);
    let (m, rows) = merge_rows(&[("s", &a), ("o", &b)], &convert::Options::default());
    let stats = m.path.unwrap();
    assert_eq!(stats.matched, sa.packets);
    assert_eq!(rows.len() as u64, sa.packets);
    let ports: std::collections::BTreeSet<Option<u16>> =
        rows.iter().map(|r| r.local_port).collect();
    assert!(ports.len() >= 3 * 5, "{ports:?}");
}

#[test]
fn each_system_pairs_its_own_adapter_and_stack_only() {
    // SYSA traced its adapter and its stack; SYSB, the far end of the same
    // connections, only its stack. In any input order SYSA's sightings pair with each
    // other and SYSB's packets stay out of path.csv.
    let cap = std::fs::read(
        common::captures_dir().join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap"),
    )
    .unwrap();
    let a = synth::Options {
        system: "SYSA".into(),
        hosts: vec!["141.142.220.235".parse().unwrap()],
        ..Default::default()
    };
    let (a_stack, a_osa) = synth::Pair {
        delay_ns: DELAY_NS,
        ..Default::default()
    }
    .options(&a);
    let b_stack = synth::Options {
        system: "SYSB".into(),
        hosts: vec!["199.233.217.249".parse().unwrap()],
        ..Default::default()
    };
    let make = |o: &synth::Options| {
        let mut v = Vec::new();
        synth::synthesize(&cap[..], &mut v, o, None).unwrap();
        v
    };
    let (sa, oa, sb) = (make(&a_stack), make(&a_osa), make(&b_stack));
    for order in [[0, 1, 2], [1, 2, 0], [2, 0, 1]] {
        let all = [("a_stack", &sa), ("a_osa", &oa), ("b_stack", &sb)];
        let inputs: Vec<(&str, &[u8])> = order.iter().map(|&i| (all[i].0, &all[i].1[..])).collect();
        let (m, rows) = merge_rows(&inputs, &convert::Options::default());
        let stats = m.path.unwrap();
        assert_eq!(rows.len(), 95, "{order:?}");
        assert_eq!(stats.matched, 95, "{order:?}");
        assert!(rows.iter().all(|r| r.where_ == "delivered"
            && r.latency_ns == Some(DELAY_NS)
            && r.local_ip == "141.142.220.235"));
    }
}

#[test]
fn an_input_naming_no_system_joins_the_named_one() {
    // A data trace whose writer header is too short to name its system, merged with
    // the packet trace of SYSA: one system, so the records find their sessions.
    let cap = std::fs::read(
        common::captures_dir().join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap"),
    )
    .unwrap();
    let mut packets = Vec::new();
    let o = synth::Options {
        system: "SYSA".into(),
        ..Default::default()
    };
    synth::synthesize(&cap[..], &mut packets, &o, None).unwrap();
    let mut data = Vec::new();
    let o = synth::Options {
        data_trace: true,
        header_len: 8,
        ..Default::default()
    };
    synth::synthesize(&cap[..], &mut data, &o, None).unwrap();
    let (m, tables) = common::merge_analysed(&[("p", &packets), ("d", &data)]);
    assert_eq!(m.inputs[1].1.layout.system, None);
    assert!(tables.sessions.iter().all(|s| !s.interface.0.contains('/')));
    assert!(tables.sessions.iter().all(|s| s.interface.0 != "datatrace"));
    assert!(tables.datatrace.iter().all(|d| d.session.is_some()));
}
