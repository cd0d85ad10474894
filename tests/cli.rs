//! The command line end to end: outputs, summaries, exit codes 0/1/2, temporary names,
//! batches with a bad file, broken pipes.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zctrace-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn zctrace(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(common::bin()).args(args).output().unwrap()
}

#[test]
fn clean_sample_converts_with_exit_0_and_no_temporary_files() {
    let dir = tmpdir("clean");
    let out = zctrace(&[
        "convert".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("framing RDW (detected)"), "{text}");
    assert!(text.contains("status: clean"), "{text}");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // The pcapng and the six CSV tables, no temporary files left behind.
    assert_eq!(
        files,
        [
            "ftp_rdw.trace.datatrace.csv",
            "ftp_rdw.trace.exceptions.csv",
            "ftp_rdw.trace.ftp.csv",
            "ftp_rdw.trace.packets.csv",
            "ftp_rdw.trace.pcapng",
            "ftp_rdw.trace.sessions.csv",
            "ftp_rdw.trace.tls.csv"
        ]
    );
    let ftp = std::fs::read_to_string(dir.join("ftp_rdw.trace.ftp.csv")).unwrap();
    assert!(
        ftp.starts_with("\u{feff}time,session,user,command,"),
        "{ftp}"
    );
    assert!(ftp.contains(",PASS,****,230,"), "{ftp}");
    let got = common::read(&std::fs::read(dir.join("ftp_rdw.trace.pcapng")).unwrap());
    assert!(got.packets.len() > 50);
    assert!(
        got.shb_comments[0].contains("framing RDW"),
        "{:?}",
        got.shb_comments
    );
    assert!(
        got.shb_comments[0].contains("component SYSTCPDA"),
        "{:?}",
        got.shb_comments
    );
    assert!(
        got.shb_userappl
            .as_deref()
            .unwrap_or("")
            .starts_with("zctrace ")
    );
}

#[test]
fn damaged_sample_exits_1_and_names_the_offset() {
    let dir = tmpdir("damaged");
    let out = zctrace(&[
        "convert".as_ref(),
        sample("damaged.trace").as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("bytes skipped"), "{text}");
    assert!(text.contains("offset "), "{text}");
    assert!(dir.join("damaged.trace.pcapng").exists());
}

#[test]
fn batch_with_a_missing_file_exits_2_and_converts_the_rest() {
    let dir = tmpdir("batch");
    let out = zctrace(&[
        "convert".as_ref(),
        "/nonexistent/x.trace".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        sample("tls_raw_straddle.trace").as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
        "--quiet".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/x.trace"), "{err}");
    assert!(dir.join("ftp_rdw.trace.pcapng").exists());
    assert!(dir.join("tls_raw_straddle.trace.pcapng").exists());
    assert!(out.stdout.is_empty(), "--quiet prints no summary");
}

#[test]
fn bad_arguments_exit_2() {
    let out = zctrace(&["convert".as_ref(), "--framing".as_ref(), "xyz".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
    let out = zctrace(&["info".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn info_and_forced_layout() {
    let out = zctrace(&[
        "info".as_ref(),
        sample("tls_raw_straddle.trace").as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("framing raw (detected)"), "{text}");
    assert!(text.contains("writer header 64 bytes (learned)"), "{text}");
    // Forcing a wrong header length is obeyed and shows up as damage.
    let out = zctrace(&[
        "info".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        "--record-header".as_ref(),
        "70".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("writer header 70 bytes (forced)"), "{text}");
}

#[test]
fn dump_into_a_closed_pipe_is_not_an_error() {
    let mut child = Command::new(common::bin())
        .arg("dump")
        .arg(sample("ftp_rdw.trace"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&first).starts_with("framing RDW"));
}

#[test]
fn synth_then_convert_from_the_command_line() {
    let dir = tmpdir("synth");
    let trace = dir.join("x.trace");
    let cap = common::captures_dir().join("dns_over_tcp__tcpdump.pcap");
    let out = zctrace(&[
        "synth".as_ref(),
        cap.as_os_str(),
        "-o".as_ref(),
        trace.as_os_str(),
        "--framing".as_ref(),
        "bdw".as_ref(),
        "--max-cte".as_ref(),
        "200".as_ref(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = zctrace(&[
        "convert".as_ref(),
        trace.as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("framing BDW+RDW (detected)"), "{text}");
    assert!(text.contains("11 packets"), "{text}");
    assert!(text.contains("reassembled"), "{text}");
}

#[test]
fn analyze_takes_traces_and_ordinary_captures() {
    let dir = tmpdir("analyze");
    let cap = common::captures_dir().join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap");
    let out = zctrace(&[
        "analyze".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        cap.as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
        "--local".as_ref(),
        "141.142.220.235".as_ref(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("capture with 95 packets"), "{text}");
    // The trace made from that capture and the capture itself give the same sessions
    // (times, directions and interface names aside: the capture has no interface).
    let trace = std::fs::read_to_string(dir.join("ftp_rdw.trace.sessions.csv")).unwrap();
    let capture = std::fs::read_to_string(
        dir.join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap.sessions.csv"),
    )
    .unwrap();
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                // session..remote_port, then initiator, state..payload_out
                [&f[..7], &f[8..9], &f[12..20]].concat().join(",")
            })
            .collect()
    };
    assert_eq!(strip(&trace), strip(&capture));
    assert!(
        !dir.join("ftp_rdw.trace.pcapng").exists(),
        "analyze writes no pcapng"
    );
}

#[test]
fn localtime_writes_csv_times_at_an_offset() {
    let dir = tmpdir("localtime");
    let out = zctrace(&[
        "analyze".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
        "--localtime".as_ref(),
        "-05:00".as_ref(),
        "--quiet".as_ref(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = std::fs::read_to_string(dir.join("ftp_rdw.trace.packets.csv")).unwrap();
    // The first packet is at 16:52:41.968492 UTC.
    assert!(
        p.contains("\n1,2012-02-21T11:52:41.968492000-05:00,1329843161.968492000,"),
        "{p}"
    );
    let bad = zctrace(&[
        "analyze".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
        "--localtime".as_ref(),
        "EST".as_ref(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn synth_pair_then_merge_gives_one_pcapng_and_path_csv() {
    let dir = tmpdir("merge");
    let cap = common::captures_dir().join("ftp_passive_pasv_retr__suricata.pcap");
    let (stack, osa) = (dir.join("stack.trace"), dir.join("osa.trace"));
    let out = zctrace(&[
        "synth".as_ref(),
        cap.as_os_str(),
        "-o".as_ref(),
        stack.as_os_str(),
        "--pair".as_ref(),
        osa.as_os_str(),
        "--osa-delay-ns".as_ref(),
        "40000".as_ref(),
        "--drop-osa".as_ref(),
        "4=17".as_ref(),
        "--drop-stack".as_ref(),
        "8=4114".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let outdir = dir.join("out");
    let out = zctrace(&[
        "convert".as_ref(),
        "--merge".as_ref(),
        "--name".as_ref(),
        "both".as_ref(),
        stack.as_os_str(),
        osa.as_os_str(),
        "-o".as_ref(),
        outdir.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{out:?}");
    assert!(
        text.contains("2 inputs merged in time order, 125 packets written"),
        "{text}"
    );
    assert!(
        text.contains("min 40000 ns, mean 40000 ns, max 40000 ns"),
        "{text}"
    );
    let mut files: Vec<String> = std::fs::read_dir(&outdir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "both.datatrace.csv",
            "both.exceptions.csv",
            "both.ftp.csv",
            "both.packets.csv",
            "both.path.csv",
            "both.pcapng",
            "both.sessions.csv",
            "both.tls.csv",
        ]
    );
    let path = std::fs::read_to_string(outdir.join("both.path.csv")).unwrap();
    let rows: Vec<&str> = path.lines().skip(1).collect();
    assert_eq!(rows.len(), 63, "one row per packet");
    let dropped: Vec<&&str> = rows.iter().filter(|r| r.contains("dropped")).collect();
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert!(
        dropped.iter().any(|r| r.contains(",osa-dropped,17,")),
        "{dropped:?}"
    );
    assert!(
        dropped
            .iter()
            .any(|r| r.contains(",stack-dropped,4114,IP_MAC_BRDCST")),
        "{dropped:?}"
    );
    // Both views in one pcapng, in time order.
    let got = common::read(&std::fs::read(outdir.join("both.pcapng")).unwrap());
    let mut names: Vec<&str> = got.ifaces.iter().map(|i| i.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["EZANTAOSA1", "OSAQDIO1"]);
    assert!(got.packets.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    assert!(
        got.shb_comments
            .iter()
            .any(|c| c.starts_with("merged in time order:") && c.contains("SYSTCPOT")),
        "{:?}",
        got.shb_comments
    );
}

#[test]
fn merge_with_a_missing_input_fails_with_2_and_leaves_nothing() {
    let dir = tmpdir("merge-missing");
    let out = zctrace(&[
        "convert".as_ref(),
        "--merge".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        dir.join("nope.trace").as_os_str(),
        "-o".as_ref(),
        dir.join("out").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.trace: cannot open"));
    assert!(!dir.join("out/merged.pcapng").exists());
}

#[test]
fn sort_puts_a_disordered_trace_in_time_order() {
    let dir = tmpdir("sort");
    // The OSAENTA half of a pair: inbound records 30 us early, outbound 30 us late,
    // so the file is out of time order where directions alternate quickly.
    let cap = common::captures_dir().join("tls12__zeek.pcap");
    let out = zctrace(&[
        "synth".as_ref(),
        cap.as_os_str(),
        "-o".as_ref(),
        dir.join("s.trace").as_os_str(),
        "--pair".as_ref(),
        dir.join("o.trace").as_os_str(),
        "--osa-delay-ns".as_ref(),
        "30000000".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let times = |args: &[&str]| {
        let o = dir.join(args.join("-"));
        let mut a: Vec<&std::ffi::OsStr> = vec!["convert".as_ref()];
        a.extend(args.iter().map(|s| std::ffi::OsStr::new(*s)));
        a.extend([
            dir.join("o.trace").into_os_string().leak() as &std::ffi::OsStr,
            "-o".as_ref(),
            o.clone().into_os_string().leak(),
            "--no-csv".as_ref(),
        ]);
        let out = zctrace(&a);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let got = common::read(&std::fs::read(o.join("o.trace.pcapng")).unwrap());
        got.packets.iter().map(|p| p.ts_ns).collect::<Vec<_>>()
    };
    let plain = times(&[]);
    let sorted = times(&["--sort"]);
    assert!(
        plain.windows(2).any(|w| w[0] > w[1]),
        "the input is out of order"
    );
    assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    let mut want = plain.clone();
    want.sort();
    assert_eq!(sorted, want, "the same packets, sorted");
}

#[test]
fn merging_two_packet_traces_writes_no_path_csv() {
    let dir = tmpdir("merge-stacks");
    let out = zctrace(&[
        "convert".as_ref(),
        "--merge".as_ref(),
        sample("ftp_rdw.trace").as_os_str(),
        sample("discards_abbrev.trace").as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{out:?}");
    assert!(text.contains("134 packets written"), "{text}");
    assert!(!text.contains("path:"), "{text}");
    assert!(dir.join("merged.pcapng").exists());
    assert!(dir.join("merged.sessions.csv").exists());
    assert!(!dir.join("merged.path.csv").exists());
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn filters_and_libpcap_keep_data_trace_records_where_they_belong() {
    let dir = tmpdir("dt-filters");
    // --port looks at the socket the data-trace PTHDR names: the 40 records of the
    // control connection (port 21) of the 52.
    let out = zctrace(&[
        "convert".as_ref(),
        sample("ftp_datatrace.trace").as_os_str(),
        "--port".as_ref(),
        "21".as_ref(),
        "-o".as_ref(),
        dir.join("port").as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("52 packets") && text.contains("40 written"),
        "{text}"
    );
    // A classic pcap has no place for them, the tables still do (no packets.csv
    // rows: they have no frame number).
    let out = zctrace(&[
        "convert".as_ref(),
        sample("ftp_datatrace.trace").as_os_str(),
        "--libpcap".as_ref(),
        "-o".as_ref(),
        dir.join("pcap").as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("52 SMC or data-trace record(s) left out of the classic pcap"),
        "{text}"
    );
    let dt = std::fs::read_to_string(dir.join("pcap/ftp_datatrace.trace.datatrace.csv")).unwrap();
    assert_eq!(dt.lines().count(), 53);
    let pk = std::fs::read_to_string(dir.join("pcap/ftp_datatrace.trace.packets.csv")).unwrap();
    assert_eq!(pk.lines().count(), 1);
    let ss = std::fs::read_to_string(dir.join("pcap/ftp_datatrace.trace.sessions.csv")).unwrap();
    assert!(
        ss.lines()
            .any(|l| l.contains(",21,datatrace,") && l.contains("FTPD1,40,")),
        "{ss}"
    );
}

#[test]
fn merging_two_systems_keeps_their_views_apart() {
    let dir = tmpdir("two-systems");
    let cap = common::captures_dir().join("ftp_ipv4_active_port_and_passive_pasv__zeek.pcap");
    // Both ends of the same FTP session traced on their own LPAR.
    for (sys, host) in [("SYSA", "141.142.220.235"), ("SYSB", "199.233.217.249")] {
        let out = zctrace(&[
            "synth".as_ref(),
            cap.as_os_str(),
            "-o".as_ref(),
            dir.join(format!("{sys}.trace")).as_os_str(),
            "--system".as_ref(),
            sys.as_ref(),
            "--zos-host".as_ref(),
            host.as_ref(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
    }
    let out = zctrace(&[
        "convert".as_ref(),
        "--merge".as_ref(),
        dir.join("SYSA.trace").as_os_str(),
        dir.join("SYSB.trace").as_os_str(),
        "-o".as_ref(),
        dir.join("out").as_os_str(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("SYSA/OSAQDIO1 95") && text.contains("SYSB/OSAQDIO1 95"),
        "{text}"
    );
    let ss = std::fs::read_to_string(dir.join("out/merged.sessions.csv")).unwrap();
    let rows: Vec<&str> = ss.lines().skip(1).collect();
    // Each connection once per system, seen from its own side, no retransmissions.
    assert_eq!(rows.len(), 10, "{ss}");
    assert_eq!(
        rows.iter()
            .filter(|r| r.contains(",SYSA/OSAQDIO1,"))
            .count(),
        5
    );
    let ex = std::fs::read_to_string(dir.join("out/merged.exceptions.csv")).unwrap();
    assert_eq!(ex.lines().count(), 1, "{ex}");
    let control: Vec<&&str> = rows.iter().filter(|r| r.contains(",21,")).collect();
    assert_eq!(control.len(), 2, "{control:?}");
    assert!(
        control.iter().any(|r| r.contains(",local,"))
            && control.iter().any(|r| r.contains(",remote,"))
    );
}
