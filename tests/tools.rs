//! The reference readers agree: tshark reads our pcapng with the same times, lengths,
//! interfaces, directions and comments; capinfos sees if_tsresol; tcpdump and tcptrace
//! accept the --libpcap output. These run in CI (ZCTRACE_REQUIRE_TOOLS=1) and skip,
//! saying so, on a machine without the tools.

mod common;

use std::path::Path;
use std::process::Command;

use zctrace::synth::{self, Expected};
use zctrace::trace::{DiscardCode, DiscardTable, Framing};

/// Synthesizes a trace from a shared capture and runs the zctrace binary on it.
fn convert_file(
    dir: &Path,
    capture: &str,
    o: &synth::Options,
    extra: &[&str],
) -> (std::path::PathBuf, Vec<Expected>) {
    let cap = std::fs::read(common::captures_dir().join(capture)).unwrap();
    let mut trace = Vec::new();
    let mut exp = Vec::new();
    synth::synthesize(&cap[..], &mut trace, o, Some(&mut exp)).unwrap();
    let tpath = dir.join(format!("{capture}.trace"));
    std::fs::write(&tpath, &trace).unwrap();
    let out = Command::new(common::bin())
        .arg("convert")
        .arg(&tpath)
        .arg("-o")
        .arg(dir)
        .arg("--quiet")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ext = if extra.contains(&"--libpcap") {
        "pcap"
    } else {
        "pcapng"
    };
    (dir.join(format!("{capture}.trace.{ext}")), exp)
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zctrace-tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn tshark_reads_what_we_wrote() {
    if !common::have_tool("tshark") {
        return;
    }
    let dir = tmpdir("tshark");
    let cases: Vec<(&str, synth::Options)> = vec![
        (
            "ftp_ipv6_eprt_epsv__zeek.pcap",
            synth::Options {
                framing: Framing::Bdw,
                header_len: 100,
                straddle: true,
                max_cte: 512,
                discard_every: Some(7),
                ..Default::default()
            },
        ),
        (
            "tls10_sni_extensions__zeek.pcap",
            synth::Options {
                framing: Framing::Raw,
                abbrev: Some(200),
                ..Default::default()
            },
        ),
        (
            "vlan_pcp_dei_mixed_tagging__zeek.pcapng",
            synth::Options {
                osaenta: true,
                discard_every: Some(2),
                ..Default::default()
            },
        ),
    ];
    // And every shared capture, each under one of a rotation of settings, so that tshark
    // reads back the whole corpus in every mode somewhere.
    let rotation = |i: usize| -> synth::Options {
        match i % 5 {
            0 => synth::Options {
                discard_every: Some(5),
                ..Default::default()
            },
            1 => synth::Options {
                framing: Framing::Raw,
                straddle: true,
                max_cte: 512,
                ..Default::default()
            },
            2 => synth::Options {
                framing: Framing::Bdw,
                header_len: 0,
                abbrev: Some(200),
                ..Default::default()
            },
            3 => synth::Options {
                osaenta: true,
                discard_every: Some(3),
                ..Default::default()
            },
            _ => synth::Options {
                format_id: 6,
                spanned: Some(1000),
                straddle: true,
                ..Default::default()
            },
        }
    };
    let names: Vec<String> = common::captures()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 40);
    let mut cases: Vec<(&str, synth::Options)> = cases;
    for (i, n) in names.iter().enumerate() {
        cases.push((n.as_str(), rotation(i)));
    }
    let discards = DiscardTable::default();
    let mut frames = 0;
    for (capture, o) in &cases {
        let (pcapng, exp) = convert_file(&dir, capture, o, &[]);
        let rows = common::tshark_fields(
            &pcapng,
            &["-E", "occurrence=a", "-E", "aggregator=;"],
            &[
                "frame.time_epoch",
                "frame.len",
                "frame.cap_len",
                "frame.interface_name",
                "frame.packet_flags_direction",
                "frame.comment",
            ],
        );
        assert_eq!(rows.len(), exp.len(), "{capture}: frames");
        frames += rows.len();
        for (i, (f, e)) in rows.iter().zip(&exp).enumerate() {
            let ctx = format!("{capture} frame {}: {}", i + 1, f.join("|"));
            let want_time = format!(
                "{}.{:09}",
                e.time_ns.div_euclid(1_000_000_000),
                e.time_ns.rem_euclid(1_000_000_000)
            );
            assert_eq!(f[0], want_time, "{ctx}");
            assert_eq!(f[1].parse::<u32>().unwrap(), e.orig_len, "{ctx}");
            assert_eq!(f[2].parse::<usize>().unwrap(), e.data.len(), "{ctx}");
            assert_eq!(f[3], e.interface, "{ctx}");
            let dir_flag = i64::from_str_radix(f[4].trim_start_matches("0x"), 16).unwrap();
            assert_eq!(dir_flag, if e.outbound { 2 } else { 1 }, "{ctx}");
            if e.discard != 0 {
                assert!(
                    f[5].contains(&discards.comment(DiscardCode(e.discard))),
                    "{ctx}"
                );
            } else {
                assert!(!f[5].contains("discarded"), "{ctx}");
            }
            assert_eq!(
                f[5].contains("abbreviated: "),
                (e.data.len() as u32) < e.orig_len,
                "{ctx}"
            );
            assert_eq!(f[5].contains("reassembled from"), e.segments > 1, "{ctx}");
        }
    }
    assert!(frames > 3000, "tshark compared only {frames} frames");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn capinfos_sees_nanosecond_resolution_and_interfaces() {
    if !common::have_tool("capinfos") {
        return;
    }
    let dir = tmpdir("capinfos");
    let (pcapng, exp) = convert_file(&dir, "tls12__zeek.pcap", &synth::Options::default(), &[]);
    let out = Command::new("capinfos")
        .arg("-M")
        .arg(&pcapng)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("Number of packets:   {}", exp.len())),
        "{text}"
    );
    assert!(text.contains("nanoseconds (9)"), "{text}");
    assert!(text.contains("Name = OSAQDIO1"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tcpdump_and_tcptrace_accept_the_libpcap_output() {
    let tcpdump = common::have_tool("tcpdump");
    let tcptrace = common::have_tool("tcptrace");
    if !tcpdump && !tcptrace {
        return;
    }
    let dir = tmpdir("libpcap");
    let (pcap, exp) = convert_file(
        &dir,
        "ftp_ipv4_active_port_and_passive_pasv__zeek.pcap",
        &synth::Options::default(),
        &["--libpcap"],
    );
    if tcpdump {
        let out = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(&pcap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), exp.len());
        assert!(
            text.contains(".21: Flags [S.]") || text.contains(".21 > "),
            "{text}"
        );
    }
    if tcptrace {
        let out = Command::new("tcptrace")
            .args(["-n", "-l"])
            .arg(&pcap)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        // 1 control + 4 data connections in this capture.
        assert!(text.contains("5 TCP connections traced"), "{text}");
        assert!(
            text.contains(&format!("{} packets seen", exp.len())),
            "{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tshark_dissects_ftp_inside_a_data_trace() {
    if !common::have_tool("tshark") {
        return;
    }
    let dir = tmpdir("datatrace");
    let o = synth::Options {
        data_trace: true,
        ..Default::default()
    };
    let (pcapng, exp) = convert_file(
        &dir,
        "ftp_ipv4_active_port_and_passive_pasv__zeek.pcap",
        &o,
        &["--no-csv"],
    );
    let rows = common::tshark_fields(
        &pcapng,
        &["-Y", "ftp"],
        &[
            "frame.number",
            "ftp.request.command",
            "ftp.request.arg",
            "ftp.response.code",
        ],
    );
    let commands: Vec<String> = rows
        .iter()
        .filter(|f| !f[1].is_empty())
        .map(|f| format!("{} {}", f[1], f[2]).trim().to_string())
        .collect();
    // The control connection's commands, in order, each seen as a request (so the
    // port table and the addresses told Wireshark which side is the client).
    for want in [
        "USER anonymous",
        "PASS test",
        "SYST",
        "PASV",
        "LIST",
        "PORT 141,142,220,235,131,46",
        "QUIT",
    ] {
        assert!(
            commands.iter().any(|c| c == want),
            "{want} not in {commands:?}"
        );
    }
    let replies = rows
        .iter()
        .filter(|f| f.get(3).is_some_and(|c| !c.is_empty()))
        .count();
    assert!(replies >= 10, "{replies} replies dissected");
    assert!(exp.len() > 40);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tshark_reads_a_merged_pair_as_both_views_on_one_timeline() {
    if !common::have_tool("tshark") {
        return;
    }
    let dir = tmpdir("merge");
    let cap = std::fs::read(common::captures_dir().join("tls12__zeek.pcap")).unwrap();
    let (so, oo) = synth::Pair {
        delay_ns: 30_000,
        drop_osa: vec![(4, 17)],
        drop_stack: vec![(6, 4114)],
    }
    .options(&synth::Options::default());
    let mut paths = Vec::new();
    let mut counts = Vec::new();
    for (name, o) in [("stack.trace", &so), ("osa.trace", &oo)] {
        let mut trace = Vec::new();
        let mut exp = Vec::new();
        synth::synthesize(&cap[..], &mut trace, o, Some(&mut exp)).unwrap();
        std::fs::write(dir.join(name), &trace).unwrap();
        paths.push(dir.join(name));
        counts.push(exp.len());
    }
    let out = Command::new(common::bin())
        .args(["convert", "--merge", "--quiet", "--no-csv"])
        .args(&paths)
        .arg("-o")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows = common::tshark_fields(
        &dir.join("merged.pcapng"),
        &[],
        &[
            "frame.interface_name",
            "frame.time_epoch",
            "tcp.seq_raw",
            "frame.comment",
        ],
    );
    assert_eq!(rows.len(), counts[0] + counts[1]);
    let osa = rows.iter().filter(|r| r[0] == "EZANTAOSA1").count();
    let stack = rows.iter().filter(|r| r[0] == "OSAQDIO1").count();
    assert_eq!((stack, osa), (counts[0], counts[1]));
    // One timeline: tshark's times never go back.
    let times: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Each view's discard is a comment tshark shows.
    let comments: Vec<&str> = rows
        .iter()
        .map(|r| r[3].as_str())
        .filter(|c| !c.is_empty())
        .collect();
    assert!(
        comments
            .iter()
            .any(|c| c.contains("discarded: OSA discard 17")),
        "{comments:?}"
    );
    assert!(
        comments.iter().any(|c| c.contains("discarded: 4114")),
        "{comments:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
