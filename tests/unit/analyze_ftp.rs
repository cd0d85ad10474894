//! Unit tests of `analyze::ftp` (kept outside `src/` so the sources stay the
//! decoder; included from there as a child module, with access to private items).

use super::*;

const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 21));

/// Feeds a client line then a server reply, each as one packet.
fn talk(f: &mut Ftp, frame: &mut u64, cmd: &str, reply: &str) {
    *frame += 1;
    f.data(Dir::ToServer, cmd.as_bytes(), *frame, *frame as i64 * 1000);
    *frame += 1;
    f.data(
        Dir::ToClient,
        reply.as_bytes(),
        *frame,
        *frame as i64 * 1000,
    );
}

fn one_row(f: &mut Ftp) -> Row {
    let mut rows = f.take_rows();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

#[test]
fn command_and_reply_make_a_row() {
    let mut f = Ftp::new(SERVER);
    let mut n = 0;
    f.data(Dir::ToClient, b"220 ready\r\n", 1, 10);
    assert!(f.take_rows().is_empty(), "greeting answers no command");
    assert_eq!(
        f.take_messages(),
        vec![(1, "ftp reply 220 ready".to_string())]
    );
    n += 1;
    talk(
        &mut f,
        &mut n,
        "user anonymous\r\n",
        "331 Send password\r\n",
    );
    let r = one_row(&mut f);
    assert_eq!(r.command, "USER");
    assert_eq!(r.argument, "anonymous");
    assert_eq!(r.user, "anonymous");
    assert_eq!(r.reply_code, Some(331));
    assert_eq!(r.reply_message, "Send password");
    assert_eq!((r.frame, r.time_ns, r.reply_frame), (2, 2000, Some(3)));
    assert!(!r.incomplete);
    talk(&mut f, &mut n, "PASS secret\r\n", "230 Logged in\r\n");
    let r = one_row(&mut f);
    assert_eq!((r.command.as_str(), r.argument.as_str()), ("PASS", "****"));
    assert_eq!(
        f.take_messages(),
        vec![
            (2, "ftp command USER anonymous".to_string()),
            (3, "ftp reply 331 Send password".to_string()),
            (4, "ftp command PASS ****".to_string()),
            (5, "ftp reply 230 Logged in".to_string()),
        ]
    );
    assert_eq!(f.user(), Some("anonymous"));
    assert_eq!(f.commands(), 2);
    assert_eq!(f.login(), "ok");
}

#[test]
fn bare_lf_and_byte_by_byte() {
    let mut f = Ftp::new(SERVER);
    for (i, b) in b"Syst\n".iter().enumerate() {
        f.data(Dir::ToServer, &[*b], i as u64, 0);
    }
    for (i, b) in b"215 UNIX Type: L8\r\n".iter().enumerate() {
        f.data(Dir::ToClient, &[*b], 100 + i as u64, 0);
    }
    let r = one_row(&mut f);
    assert_eq!(r.command, "SYST");
    assert_eq!(r.argument, "");
    assert_eq!(r.frame, 4, "the packet that ends the line");
    assert_eq!(r.reply_message, "UNIX Type: L8");
    assert_eq!(r.reply_frame, Some(118));
}

#[test]
fn multi_line_reply_is_one_reply_with_its_last_line() {
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"PASS x\r\n", 1, 0);
    f.data(Dir::ToClient, b"230-Welcome\r\n", 2, 0);
    // Continuation lines may carry another code in `ddd-` form.
    f.data(Dir::ToClient, b"  line two\r\n200-not the end\r\n", 3, 0);
    f.data(Dir::ToClient, b"230-more\r\n\r\n", 4, 0);
    assert!(f.take_rows().is_empty());
    f.data(Dir::ToClient, b"230 Guest login ok\r\n", 5, 0);
    let r = one_row(&mut f);
    assert_eq!(r.reply_code, Some(230));
    assert_eq!(r.reply_message, "Guest login ok");
    assert_eq!(
        f.take_messages(),
        vec![
            (1, "ftp command PASS ****".to_string()),
            (2, "ftp reply 230-Welcome".to_string()),
            (3, "ftp reply 230- line two".to_string()),
            (4, "ftp reply 230-more".to_string()),
            (5, "ftp reply 230 Guest login ok".to_string()),
        ]
    );
}

#[test]
fn whole_multi_line_reply_in_one_packet_gives_one_message() {
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"FEAT\r\n", 1, 0);
    f.data(
        Dir::ToClient,
        b"211-Features:\r\n EPSV\r\n PASV\r\n211 End\r\n",
        2,
        0,
    );
    let r = one_row(&mut f);
    assert_eq!((r.reply_code, r.reply_message.as_str()), (Some(211), "End"));
    let m = f.take_messages();
    assert_eq!(m[1], (2, "ftp reply 211 End".to_string()));
    assert_eq!(m.len(), 2);
}

#[test]
fn unterminated_multi_line_block_before_another_code_is_dropped() {
    // A server bug: a `230-` block that never ends, then the real 226.
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"STOR x\r\n", 1, 0);
    f.data(Dir::ToClient, b"150 Opening\r\n", 2, 0);
    f.data(
        Dir::ToClient,
        b"230- WARNING bare linefeeds\r\n   may be bad\r\n",
        3,
        0,
    );
    f.data(Dir::ToClient, b"226 Transfer complete.\r\n", 4, 0);
    let r = one_row(&mut f);
    assert_eq!(r.reply_code, Some(226));
    assert_eq!(r.preliminary, "150 Opening");
}

#[test]
fn preliminary_reply_waits_for_the_final_one() {
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"RETR robots.txt\r\n", 1, 0);
    f.data(
        Dir::ToClient,
        b"150 Opening BINARY mode (77 bytes).\r\n",
        2,
        0,
    );
    assert!(f.take_rows().is_empty());
    f.data(Dir::ToClient, b"226 Transfer complete.\r\n", 3, 0);
    let r = one_row(&mut f);
    assert_eq!(r.preliminary, "150 Opening BINARY mode (77 bytes).");
    assert_eq!(r.reply_code, Some(226));
    assert_eq!(r.reply_message, "Transfer complete.");
    assert_eq!(f.take_messages().len(), 3);
    // Pipelined commands pair first in, first out.
    f.data(Dir::ToServer, b"TYPE I\r\nPASV\r\n", 4, 0);
    f.data(
        Dir::ToClient,
        b"200 ok\r\n227 Entering (1,2,3,4,0,21)\r\n",
        5,
        0,
    );
    let rows = f.take_rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].command.as_str(), rows[0].reply_code),
        ("TYPE", Some(200))
    );
    assert_eq!(
        (rows[1].command.as_str(), rows[1].reply_code),
        ("PASV", Some(227))
    );
    assert_eq!(f.take_messages().len(), 2 + 2);
}

#[test]
fn port_announces_an_active_endpoint() {
    let mut f = Ftp::new(SERVER);
    let mut n = 0;
    talk(
        &mut f,
        &mut n,
        "PORT 141,142,220,235,131,46\r\n",
        "200 PORT ok\r\n",
    );
    let r = one_row(&mut f);
    let d = r.data.expect("endpoint");
    assert_eq!(d.mode, DataMode::Active);
    assert_eq!(d.ip, "141.142.220.235".parse::<IpAddr>().unwrap());
    assert_eq!(d.port, 131 * 256 + 46);
    assert!(!d.refused);
    // Refused: the endpoint is still reported.
    talk(
        &mut f,
        &mut n,
        "PORT 10,0,0,1,4,1\r\n",
        "500 Illegal PORT\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert!(d.refused);
    assert_eq!(d.port, 1025);
    // Not an endpoint: out of range, too few numbers.
    talk(&mut f, &mut n, "PORT 10,0,0,300,4,1\r\n", "501 no\r\n");
    assert_eq!(one_row(&mut f).data, None);
    talk(&mut f, &mut n, "PORT 10,0,0,1,4\r\n", "501 no\r\n");
    assert_eq!(one_row(&mut f).data, None);
}

#[test]
fn pasv_reply_anywhere_in_the_text() {
    let mut f = Ftp::new(SERVER);
    let mut n = 0;
    talk(
        &mut f,
        &mut n,
        "PASV\r\n",
        "227 Entering Passive Mode (137,72,43,207,14,95)\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!(d.mode, DataMode::Passive);
    assert_eq!(d.mode.name(), "passive");
    assert_eq!(d.ip, "137.72.43.207".parse::<IpAddr>().unwrap());
    assert_eq!(d.port, 14 * 256 + 95);
    // Without parentheses, with spaces, after other numbers.
    talk(
        &mut f,
        &mut n,
        "PASV\r\n",
        "227 Mode 2 = 10, 1, 2, 3, 200, 1.\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!((d.ip, d.port), ("10.1.2.3".parse().unwrap(), 51201));
    // 0.0.0.0 means the server's own address.
    talk(&mut f, &mut n, "PASV\r\n", "227 Entering (0,0,0,0,4,0)\r\n");
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!((d.ip, d.port), (SERVER, 1024));
    // Refused PASV announces nothing.
    talk(
        &mut f,
        &mut n,
        "PASV\r\n",
        "425 Can't open passive connection\r\n",
    );
    assert_eq!(one_row(&mut f).data, None);
    // A 227 split over a multi-line reply.
    talk(
        &mut f,
        &mut n,
        "PASV\r\n",
        "227-Entering (1,2,3,4,0,80)\r\n227 OK\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!(d.port, 80);
}

#[test]
fn eprt_any_delimiter_both_families() {
    let mut f = Ftp::new(SERVER);
    let mut n = 0;
    talk(
        &mut f,
        &mut n,
        "EPRT |1|132.235.1.2|6275|\r\n",
        "200 ok\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!(d.mode, DataMode::ExtendedActive);
    assert_eq!(d.mode.name(), "extended active");
    assert_eq!((d.ip, d.port), ("132.235.1.2".parse().unwrap(), 6275));
    talk(
        &mut f,
        &mut n,
        "eprt !2!1080::8:800:200C:417A!5282!\r\n",
        "522 no\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!(d.ip, "1080::8:800:200C:417A".parse::<IpAddr>().unwrap());
    assert_eq!(d.port, 5282);
    assert!(d.refused);
    // Missing closing delimiter, wrong family.
    talk(&mut f, &mut n, "EPRT |1|1.2.3.4|6275\r\n", "501 no\r\n");
    assert_eq!(one_row(&mut f).data, None);
    talk(&mut f, &mut n, "EPRT |2|1.2.3.4|6275|\r\n", "501 no\r\n");
    assert_eq!(one_row(&mut f).data, None);
}

#[test]
fn epsv_uses_the_server_address() {
    let server: IpAddr = "2001:470:4867:99::21".parse().unwrap();
    let mut f = Ftp::new(server);
    let mut n = 0;
    talk(
        &mut f,
        &mut n,
        "EPSV\r\n",
        "229 Entering Extended Passive Mode (|||57086|)\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!(d.mode, DataMode::ExtendedPassive);
    assert_eq!(d.mode.name(), "extended passive");
    assert_eq!((d.ip, d.port), (server, 57086));
    talk(&mut f, &mut n, "EPSV\r\n", "229 Entering (!!!6446!)\r\n");
    assert_eq!(one_row(&mut f).data.map(|d| d.port), Some(6446));
    talk(&mut f, &mut n, "EPSV ALL\r\n", "200 EPSV ALL ok\r\n");
    assert_eq!(one_row(&mut f).data, None);
}

#[test]
fn telnet_commands_are_skipped() {
    let mut f = Ftp::new(SERVER);
    // IAC IP, IAC DM (the urgent Synch before ABOR), IAC WILL x, IAC SB .. IAC SE.
    let mut cmd = vec![IAC, 244, IAC, 242];
    cmd.extend_from_slice(b"AB");
    cmd.extend_from_slice(&[IAC, WILL, 1, IAC, SB, 24, 0, IAC, SE]);
    cmd.extend_from_slice(b"OR\r\n");
    // Split inside the IAC sequence too.
    f.data(Dir::ToServer, &cmd[..1], 1, 0);
    f.data(Dir::ToServer, &cmd[1..8], 2, 0);
    f.data(Dir::ToServer, &cmd[8..], 3, 0);
    f.data(Dir::ToClient, b"226 ABOR ok\r\n", 4, 0);
    let r = one_row(&mut f);
    assert_eq!(r.command, "ABOR");
    // IAC IAC is a data byte 0xFF (not UTF-8: replaced).
    f.data(Dir::ToServer, b"CWD a\xff\xffb\r\n", 5, 0);
    f.data(Dir::ToClient, b"250 ok\r\n", 6, 0);
    assert_eq!(one_row(&mut f).argument, "a\u{FFFD}b");
}

#[test]
fn non_utf8_is_decoded_lossily() {
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"RETR caf\xe9.txt\r\n", 1, 0);
    f.data(Dir::ToClient, b"550 caf\xe9.txt: \x00no\r\n", 2, 0);
    let r = one_row(&mut f);
    assert_eq!(r.argument, "caf\u{FFFD}.txt");
    assert_eq!(r.reply_message, "caf\u{FFFD}.txt: \u{FFFD}no");
    assert_eq!(r.reply_code, Some(550));
}

#[test]
fn long_lines_are_capped_and_decoding_goes_on() {
    let mut f = Ftp::new(SERVER);
    let mut long = b"STOR ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 100_000));
    long.extend_from_slice(b"\r\n");
    for (i, c) in long.chunks(1000).enumerate() {
        f.data(Dir::ToServer, c, i as u64, 0);
    }
    f.data(Dir::ToClient, b"553 name too long\r\n", 200, 0);
    let r = one_row(&mut f);
    assert_eq!(r.command, "STOR");
    assert_eq!(r.argument.len(), MAX_LINE - 5);
    assert!(r.incomplete);
    let mut n = 300;
    talk(&mut f, &mut n, "NOOP\r\n", "200 ok\r\n");
    let r = one_row(&mut f);
    assert!(!r.incomplete);
    assert!(
        f.take_messages()
            .iter()
            .all(|(_, m)| m.chars().count() < 240)
    );
}

#[test]
fn waiting_commands_are_bounded() {
    let mut f = Ftp::new(SERVER);
    for i in 0..1500u64 {
        f.data(Dir::ToServer, b"NOOP\r\n", i, 0);
    }
    let early = f.take_rows();
    assert_eq!(early.len(), 500);
    assert!(early.iter().all(|r| r.incomplete && r.reply_code.is_none()));
    assert_eq!(early[0].frame, 0);
    f.data(Dir::ToClient, b"200 ok\r\n", 2000, 0);
    assert_eq!(one_row(&mut f).frame, 500);
    assert_eq!(f.finish().len(), 999);
    assert_eq!(f.commands(), 1500);
}

#[test]
fn auth_tls_switches_and_ccc_returns() {
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"AUTH TLS\r\n", 1, 0);
    let reply = b"234 Proceed with negotiation.\r\n\x16\x03\x01";
    assert_eq!(f.data(Dir::ToClient, reply, 2, 0), reply.len() - 3);
    assert!(f.encrypted());
    let r = one_row(&mut f);
    assert_eq!((r.command.as_str(), r.argument.as_str()), ("AUTH", "TLS"));
    assert_eq!(r.reply_code, Some(234));
    // Encrypted: nothing is FTP any more, no rows, no messages.
    f.take_messages();
    assert_eq!(f.data(Dir::ToServer, b"\x16\x03\x01\x00\x05hello", 3, 0), 0);
    assert_eq!(f.data(Dir::ToClient, b"PASV\r\n", 4, 0), 0);
    f.gap(Dir::ToClient, 10);
    assert!(f.take_rows().is_empty() && f.take_messages().is_empty());
    // The TLS layer saw clear text after CCC.
    f.clear_again();
    assert!(!f.encrypted());
    let mut n = 10;
    talk(
        &mut f,
        &mut n,
        "PASV\r\n",
        "227 Entering (10,220,50,76,64,155).\r\n",
    );
    let d = one_row(&mut f).data.expect("endpoint");
    assert_eq!(d.port, 64 * 256 + 155);
}

#[test]
fn auth_tls_refused_stays_clear_and_other_auth_never_switches() {
    let mut f = Ftp::new(SERVER);
    let mut n = 0;
    talk(&mut f, &mut n, "AUTH TLS\r\n", "534 Policy denies\r\n");
    assert!(!f.encrypted());
    talk(&mut f, &mut n, "AUTH GSSAPI\r\n", "234 done\r\n");
    assert!(!f.encrypted());
    assert_eq!(f.take_rows().len(), 2);
    talk(&mut f, &mut n, "auth ssl\r\n", "234 go\r\n");
    assert!(f.encrypted());
}

#[test]
fn client_hello_without_a_seen_234_switches_too() {
    // The 234 was lost in a capture gap; the ClientHello shows the switch.
    let mut f = Ftp::new(SERVER);
    let bytes = b"AUTH TLS\r\n\x16\x03\x01\x00\x10";
    assert_eq!(f.data(Dir::ToServer, bytes, 1, 0), 10);
    assert!(f.encrypted());
    let rows = f.finish();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].reply_code, None);
}

#[test]
fn gap_salvages_the_partial_line_and_resyncs() {
    let mut f = Ftp::new(SERVER);
    // Abbreviated packet: the reply code survives, the rest of the line is missing.
    f.data(Dir::ToServer, b"RETR robots.txt\r\n", 1, 0);
    f.data(Dir::ToClient, b"150 Opening BIN", 2, 0);
    f.gap(Dir::ToClient, 40);
    // The next packet starts in the middle of the lost line, then a real reply.
    f.data(Dir::ToClient, b"ytes).\r\n226 Transfer complete.\r\n", 3, 0);
    let r = one_row(&mut f);
    assert_eq!(r.preliminary, "150 Opening BIN");
    assert_eq!(r.reply_code, Some(226));
    assert!(r.incomplete);
    let m = f.take_messages();
    assert_eq!(m[1], (2, "ftp reply 150 Opening BIN".to_string()));
    assert_eq!(m[2], (3, "ftp reply 226 Transfer complete.".to_string()));
    assert_eq!(m.len(), 3);
    // A gap that ends on a line boundary loses nothing after it.
    f.gap(Dir::ToServer, 27);
    f.data(Dir::ToServer, b"CWD ../\r\n", 4, 0);
    f.data(Dir::ToClient, b"250 ok\r\n", 5, 0);
    let r = one_row(&mut f);
    assert_eq!((r.command.as_str(), r.incomplete), ("CWD", true));
    // A truncated PORT or 227 must not yield a shortened port.
    f.data(Dir::ToServer, b"PORT 1,2,3,4,5,6", 6, 0);
    f.gap(Dir::ToServer, 3);
    f.data(Dir::ToClient, b"200 ok\r\n", 7, 0);
    let r = one_row(&mut f);
    assert_eq!((r.command.as_str(), r.data), ("PORT", None));
    f.data(Dir::ToServer, b"PASV\r\n", 8, 0);
    f.data(Dir::ToClient, b"227 Entering (1,2,3,4,5,6", 9, 0);
    f.gap(Dir::ToClient, 5);
    let r = one_row(&mut f);
    assert_eq!(
        (r.reply_code, r.data, r.incomplete),
        (Some(227), None, true)
    );
}

#[test]
fn gap_inside_multi_line_reply() {
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"PASS x\r\n", 1, 0);
    f.data(Dir::ToClient, b"230-Banner\r\n text\r\n", 2, 0);
    f.gap(Dir::ToClient, 100);
    // The final `230 ` line was in the gap; the next reply closes the banner.
    f.data(Dir::ToServer, b"SYST\r\n", 3, 0);
    f.data(Dir::ToClient, b"215 UNIX Type: L8\r\n", 4, 0);
    let rows = f.take_rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].command.as_str(), rows[0].reply_code),
        ("PASS", Some(230))
    );
    assert_eq!(rows[0].reply_message, "text");
    assert!(rows[0].incomplete);
    assert_eq!(
        (rows[1].command.as_str(), rows[1].reply_code),
        ("SYST", Some(215))
    );
    assert_eq!(f.login(), "ok");
}

#[test]
fn login_state_and_failures() {
    let mut f = Ftp::new(SERVER);
    let mut n = 0;
    assert_eq!(f.login(), "none");
    talk(
        &mut f,
        &mut n,
        "LIST\r\n",
        "530 Please login with USER and PASS.\r\n",
    );
    assert_eq!((f.login(), f.login_failures()), ("none", 0));
    talk(&mut f, &mut n, "USER root\r\n", "331 Password required\r\n");
    talk(&mut f, &mut n, "PASS a\r\n", "530 Login incorrect.\r\n");
    talk(
        &mut f,
        &mut n,
        "USER admin\r\n",
        "331 Password required\r\n",
    );
    talk(&mut f, &mut n, "PASS b\r\n", "530 Login incorrect.\r\n");
    assert_eq!((f.login(), f.login_failures()), ("failed", 2));
    assert_eq!(f.user(), Some("admin"));
    talk(&mut f, &mut n, "PASS c\r\n", "230 ok\r\n");
    assert_eq!((f.login(), f.login_failures()), ("ok", 2));
    let rows = f.take_rows();
    assert_eq!(rows[1].user, "root");
    assert_eq!(rows[0].user, "");
}

#[test]
fn finish_flushes_waiting_commands_and_open_replies() {
    let mut f = Ftp::new(SERVER);
    f.data(Dir::ToServer, b"USER a\r\n", 1, 0);
    f.data(Dir::ToClient, b"331 ok\r\n", 2, 0);
    f.data(Dir::ToServer, b"STOR x\r\n", 3, 0);
    f.data(Dir::ToClient, b"150 Ok to send data.\r\n", 4, 0);
    f.data(Dir::ToServer, b"NOOP\r\nQUIT", 5, 0);
    f.data(Dir::ToClient, b"200-still going\r\n", 6, 0);
    let rows = f.finish();
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.command.as_str(), r.reply_code, r.incomplete))
        .collect();
    assert_eq!(
        got,
        vec![
            ("USER", Some(331), false),
            ("STOR", Some(200), true),
            ("NOOP", None, false),
            ("QUIT", None, true),
        ]
    );
    assert_eq!(rows[1].preliminary, "150 Ok to send data.");
    assert!(f.finish().is_empty());
}

#[test]
fn fuzz_entry_survives_noise() {
    // A deterministic xorshift stream plus some FTP-shaped fragments.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut bytes = Vec::new();
    let pieces: [&[u8]; 8] = [
        b"AUTH TLS\r\n",
        b"234 go\r\n",
        b"227 (1,2,3,4,5,6)\r\n",
        b"230-\r\n",
        b"PORT 1,2,3,4,5,6\r\n",
        b"229 (|||1|)\r\n",
        &[IAC, SB, IAC, IAC, IAC],
        b"150 x\r\n",
    ];
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(5) {
            let p = pieces[(x >> 8) as usize % pieces.len()];
            bytes.push(((x >> 20) as u8 & 0x40) | p.len() as u8);
            bytes.extend_from_slice(p);
        } else {
            bytes.push((x >> 32) as u8);
        }
    }
    for w in bytes.chunks(997) {
        fuzz(w);
    }
    fuzz(&bytes);
    fuzz(&[]);
    fuzz(&[0xff; 300]);
}

/// Tests against real captures and Zeek's ftp.log for them.
mod captures {
    use super::super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use pcap_parser::data::{PacketData, get_packetdata};
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    const DIR: &str = "/work/shared/captures";

    fn dir() -> Option<PathBuf> {
        let p = PathBuf::from(DIR);
        if p.is_dir() {
            Some(p)
        } else {
            eprintln!("{DIR} absent: capture tests skipped");
            None
        }
    }

    struct Seg {
        frame: u64,
        time_ns: i64,
        dir: Dir,
        seq: u32,
        syn: bool,
        payload: Vec<u8>,
    }

    /// The first TCP connection with port 21 in a pcap: its server address and its
    /// segments in capture order.
    fn control_connection(path: &Path) -> (IpAddr, Vec<Seg>) {
        let bytes = std::fs::read(path).unwrap();
        let cap = pcap_parser::PcapCapture::from_file(&bytes).unwrap();
        let linktype = cap.header.network;
        let nano = cap.header.is_nanosecond_precision();
        let mut key: Option<(IpAddr, u16, IpAddr)> = None;
        let mut segs = Vec::new();
        for (i, b) in cap.blocks.iter().enumerate() {
            let sliced = match get_packetdata(b.data, linktype, b.caplen as usize) {
                Some(PacketData::L2(d)) => SlicedPacket::from_ethernet(d),
                Some(PacketData::L3(_, d)) => SlicedPacket::from_ip(d),
                _ => continue,
            };
            let Ok(p) = sliced else { continue };
            let (src, dst) = match &p.net {
                Some(NetSlice::Ipv4(h)) => (
                    IpAddr::V4(h.header().source_addr()),
                    IpAddr::V4(h.header().destination_addr()),
                ),
                Some(NetSlice::Ipv6(h)) => (
                    IpAddr::V6(h.header().source_addr()),
                    IpAddr::V6(h.header().destination_addr()),
                ),
                _ => continue,
            };
            let Some(TransportSlice::Tcp(t)) = &p.transport else {
                continue;
            };
            let (sp, dp) = (t.source_port(), t.destination_port());
            let k = *key.get_or_insert(if dp == 21 {
                (src, sp, dst)
            } else {
                (dst, dp, src)
            });
            let dir = if (src, sp, dst, dp) == (k.0, k.1, k.2, 21) {
                Dir::ToServer
            } else if (dst, dp, src, sp) == (k.0, k.1, k.2, 21) {
                Dir::ToClient
            } else {
                continue;
            };
            let frac = if nano {
                i64::from(b.ts_usec)
            } else {
                i64::from(b.ts_usec) * 1000
            };
            segs.push(Seg {
                frame: i as u64 + 1,
                time_ns: i64::from(b.ts_sec) * 1_000_000_000 + frac,
                dir,
                seq: t.sequence_number(),
                syn: t.syn(),
                payload: t.payload().to_vec(),
            });
        }
        (key.expect("a port-21 connection").2, segs)
    }

    /// Skips TLS records for one direction; says where clear text starts again.
    #[derive(Default)]
    struct TlsSkip {
        left: usize,
        head: Vec<u8>,
    }

    impl TlsSkip {
        fn skip(&mut self, b: &[u8]) -> Option<usize> {
            let mut i = 0;
            while i < b.len() {
                if self.left > 0 {
                    let n = self.left.min(b.len() - i);
                    self.left -= n;
                    i += n;
                    continue;
                }
                if self.head.is_empty() && !(20..=24).contains(&b[i]) {
                    return Some(i);
                }
                self.head.push(b[i]);
                i += 1;
                if self.head.len() == 5 {
                    self.left = usize::from(u16::from_be_bytes([self.head[3], self.head[4]]));
                    self.head.clear();
                }
            }
            None
        }
    }

    struct Run {
        rows: Vec<Row>,
        messages: Vec<(u64, String)>,
        ftp: Ftp,
        /// Bytes handed to the TLS side.
        tls_bytes: usize,
        gaps: u64,
    }

    /// Reassembles each direction in sequence order (retransmitted bytes dropped, a
    /// forward jump reported as a gap: these captures have no reordering) and feeds
    /// the decoder one segment at a time, in capture order across directions. Bytes
    /// after a switch to TLS go through a record skipper that calls `clear_again`
    /// when it meets clear text, as the lead's TLS layer does.
    fn run(stem: &str) -> Option<Run> {
        let path = dir()?.join(format!("{stem}.pcap"));
        let (server, segs) = control_connection(&path);
        let mut ftp = Ftp::new(server);
        let mut next: [Option<u32>; 2] = [None, None];
        let mut tls = [TlsSkip::default(), TlsSkip::default()];
        let (mut messages, mut rows, mut tls_bytes, mut gaps) = (Vec::new(), Vec::new(), 0, 0);
        for s in &segs {
            let d = s.dir.index();
            if s.syn {
                next[d] = Some(s.seq.wrapping_add(1));
                continue;
            }
            if s.payload.is_empty() {
                continue;
            }
            let exp = *next[d].get_or_insert(s.seq);
            let off = s.seq.wrapping_sub(exp) as i32;
            let mut p = &s.payload[..];
            if off < 0 {
                let dup = off.unsigned_abs() as usize;
                if dup >= p.len() {
                    continue;
                }
                p = &p[dup..];
            } else if off > 0 {
                ftp.gap(s.dir, off as u64);
                gaps += off as u64;
            }
            next[d] = Some(s.seq.wrapping_add(s.payload.len() as u32));
            while !p.is_empty() {
                if ftp.encrypted() {
                    match tls[d].skip(p) {
                        Some(k) => {
                            tls_bytes += k;
                            ftp.clear_again();
                            tls = [TlsSkip::default(), TlsSkip::default()];
                            p = &p[k..];
                        }
                        None => {
                            tls_bytes += p.len();
                            break;
                        }
                    }
                } else {
                    let used = ftp.data(s.dir, p, s.frame, s.time_ns);
                    assert!(used == p.len() || ftp.encrypted());
                    p = &p[used..];
                }
            }
            rows.extend(ftp.take_rows());
            messages.extend(ftp.take_messages());
        }
        rows.extend(ftp.finish());
        messages.extend(ftp.take_messages());
        Some(Run {
            rows,
            messages,
            ftp,
            tls_bytes,
            gaps,
        })
    }

    /// Zeek's ftp.log rows as field maps; `-` (unset) and `(empty)` become "".
    fn zeek_log(stem: &str) -> Vec<HashMap<String, String>> {
        let base = PathBuf::from(DIR).join("baselines").join(stem);
        let file = std::fs::read_dir(&base)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("__ftp.log"))
            .expect("an ftp.log baseline");
        let text = std::fs::read_to_string(file).unwrap();
        let mut fields: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for line in text.lines() {
            if let Some(f) = line.strip_prefix("#fields\t") {
                fields = f.split('\t').map(str::to_string).collect();
            } else if !line.starts_with('#') && !line.is_empty() {
                let row = fields
                    .iter()
                    .cloned()
                    .zip(line.split('\t').map(|v| match v {
                        "-" | "(empty)" => String::new(),
                        v => v.to_string(),
                    }))
                    .collect();
                out.push(row);
            }
        }
        out
    }

    /// Zeek logs only these commands unless a test adds some (FTP::logged_commands).
    const ZEEK_LOGGED: [&str; 10] = [
        "APPE", "DELE", "RETR", "STOR", "STOU", "ACCT", "PORT", "PASV", "EPRT", "EPSV",
    ];

    /// A reply that Zeek reports differently on purpose, with why; `count` times.
    struct Quirk {
        command: &'static str,
        zeek: u16,
        ours: u16,
        count: usize,
    }

    /// Compares our rows with Zeek's ftp.log: command, argument, user, reply code
    /// and message, and the data channel (Zeek's `passive`, `data_channel.resp_h`,
    /// `data_channel.resp_p` against our mode, ip and port). Zeek's `<init>` row (the
    /// greeting) is compared with our first message, since we make no row for it.
    fn compare(stem: &str, run: &Run, quirks: &[Quirk]) {
        let zeek = zeek_log(stem);
        let mut logged: Vec<String> = ZEEK_LOGGED.iter().map(|s| s.to_string()).collect();
        logged.extend(zeek.iter().map(|z| z["command"].clone()));
        let ours: Vec<&Row> = run
            .rows
            .iter()
            .filter(|r| logged.contains(&r.command))
            .collect();
        let zeek_rows: Vec<_> = zeek.iter().filter(|z| z["command"] != "<init>").collect();
        if let Some(init) = zeek.iter().find(|z| z["command"] == "<init>") {
            // The last line of the (possibly multi-line) greeting.
            let prefix = format!("ftp reply {} ", init["reply_code"]);
            let first = run.messages.iter().find(|(_, m)| m.starts_with(&prefix));
            let want = short(&format!("{prefix}{}", init["reply_msg"]));
            assert_eq!(first.map(|(_, m)| m), Some(&want), "{stem}: greeting");
        }
        assert_eq!(ours.len(), zeek_rows.len(), "{stem}: logged rows");
        let mut seen = vec![0usize; quirks.len()];
        for (i, (o, z)) in ours.iter().zip(&zeek_rows).enumerate() {
            let at = format!("{stem} row {i} {}", o.command);
            assert_eq!(o.command, z["command"], "{at}");
            let user = if o.user.is_empty() {
                "<unknown>"
            } else {
                &o.user
            };
            assert_eq!(user, z["user"], "{at}");
            // Zeek shows anonymous passwords in clear (FTP::guest_ids); we always
            // mask. For file commands Zeek logs a URL built from the tracked working
            // directory; the argument as sent is its tail.
            if o.command == "PASS" {
                assert_eq!(o.argument, "****", "{at}");
            } else if z["arg"].starts_with("ftp://") {
                assert!(z["arg"].ends_with(&format!("/{}", o.argument)), "{at}");
            } else {
                assert_eq!(o.argument, z["arg"], "{at}");
            }
            let zc: u16 = z["reply_code"].parse().unwrap();
            let oc = o.reply_code.expect("a reply");
            if zc != oc {
                let q = quirks
                    .iter()
                    .position(|q| (q.command, q.zeek, q.ours) == (o.command.as_str(), zc, oc))
                    .unwrap_or_else(|| panic!("{at}: reply {oc}, Zeek {zc}"));
                seen[q] += 1;
            } else {
                assert_eq!(o.reply_message, z["reply_msg"], "{at}");
            }
            match (&o.data, z["data_channel.passive"].as_str()) {
                (None, "") => {}
                (Some(d), p) => {
                    assert_eq!(d.mode.passive(), p == "T", "{at}");
                    assert_eq!(d.ip.to_string(), z["data_channel.resp_h"], "{at}");
                    assert_eq!(d.port.to_string(), z["data_channel.resp_p"], "{at}");
                    assert!(!d.refused, "{at}");
                }
                (None, p) => panic!("{at}: no endpoint, Zeek passive={p}"),
            }
        }
        for (q, n) in quirks.iter().zip(seen) {
            assert_eq!(n, q.count, "{stem}: {} {} vs {}", q.command, q.zeek, q.ours);
        }
    }

    fn messages_of(run: &Run, frame: u64) -> Vec<&str> {
        run.messages
            .iter()
            .filter(|(f, _)| *f == frame)
            .map(|(_, m)| m.as_str())
            .collect()
    }

    #[test]
    fn ipv4_port_and_pasv() {
        let stem = "ftp_ipv4_active_port_and_passive_pasv__zeek";
        let Some(run) = run(stem) else { return };
        compare(stem, &run, &[]);
        assert_eq!(run.gaps, 0);
        assert_eq!(run.ftp.user(), Some("anonymous"));
        assert_eq!(run.ftp.login(), "ok");
        // USER PASS SYST PASV LIST TYPE PASV RETR TYPE PORT LIST TYPE PORT RETR QUIT
        assert_eq!(run.ftp.commands(), 15);
        assert_eq!(run.rows.len(), 15);
        assert!(
            run.rows
                .iter()
                .all(|r| r.reply_code.is_some() && !r.incomplete)
        );
        let retr = run.rows.iter().find(|r| r.command == "RETR").unwrap();
        assert_eq!(
            retr.preliminary,
            "150 Opening BINARY mode data connection for 'robots.txt' (77 bytes)."
        );
        let all: Vec<&str> = run.messages.iter().map(|(_, m)| m.as_str()).collect();
        assert!(all.contains(&"ftp command PASS ****"));
        assert!(all.contains(&"ftp reply 227 Entering Passive Mode (199,233,217,249,221,90)"));
        assert!(all.contains(&"ftp command PORT 141,142,220,235,131,46"));
        // The 230 banner spans three packets: its opening, a middle part, and the
        // last part with the final line.
        assert!(all.contains(&"ftp reply 230-"));
        assert!(all.contains(&"ftp reply 230 Guest login ok, access restrictions apply."));
        let pass = run.rows.iter().find(|r| r.command == "PASS").unwrap();
        assert_eq!(messages_of(&run, pass.reply_frame.unwrap()).len(), 1);
    }

    #[test]
    fn ipv6_eprt_and_epsv() {
        let stem = "ftp_ipv6_eprt_epsv__zeek";
        let Some(run) = run(stem) else { return };
        compare(stem, &run, &[]);
        let modes: Vec<&str> = run
            .rows
            .iter()
            .filter_map(|r| r.data.map(|d| d.mode.name()))
            .collect();
        assert_eq!(
            modes,
            [
                "extended passive",
                "extended passive",
                "extended passive",
                "extended active",
                "extended active"
            ]
        );
    }

    #[test]
    fn ipv6_epsv_multiline_greeting() {
        let stem = "ftp_ipv6_epsv_multiline_reply__zeek";
        let Some(run) = run(stem) else { return };
        // Zeek writes a command to ftp.log only when the next command arrives or the
        // connection ends, and until then every reply overwrites its reply fields.
        // Here RETR got `550 ... No such file` and the server then closed with an
        // unsolicited `221 You could at least say goodbye.` (no QUIT was sent), which
        // Zeek logged as RETR's reply. The spec wants the first final reply (550); the
        // 221 answers nothing, so it is only a message.
        compare(
            stem,
            &run,
            &[Quirk {
                command: "RETR",
                zeek: 221,
                ours: 550,
                count: 1,
            }],
        );
        let retr = run.rows.iter().find(|r| r.command == "RETR").unwrap();
        assert_eq!(
            retr.reply_message,
            "libssh-0.5.2.tar.gz: No such file or directory."
        );
        assert!(
            run.messages
                .last()
                .unwrap()
                .1
                .starts_with("ftp reply 221 You could")
        );
        // The greeting: eleven `220-` packets, then `220 FTP server ready.`, as the
        // btest `out` baseline lists them (one message per packet).
        let greeting: Vec<&str> = run
            .messages
            .iter()
            .take_while(|(_, m)| m.starts_with("ftp reply 220"))
            .map(|(_, m)| m.as_str())
            .collect();
        assert_eq!(greeting.len(), 12);
        assert_eq!(greeting[0], "ftp reply 220- Welcome to FTP.JPIX.ad.jp,");
        assert_eq!(greeting[2], "ftp reply 220-");
        assert_eq!(greeting[11], "ftp reply 220 FTP server ready.");
        let sizes: Vec<_> = run
            .rows
            .iter()
            .map(|r| (r.command.as_str(), r.reply_code))
            .collect();
        assert_eq!(sizes[6], ("SIZE", Some(550)));
    }

    #[test]
    fn pasv_many_transfers_with_a_capture_gap() {
        let stem = "ftp_pasv_many_transfers_cwd__zeek";
        let Some(run) = run(stem) else { return };
        // Twice the capture lost the client's `RETR ...\r\n` (27 bytes each; tshark
        // says "bytes missing in capture file"). We keep the PASV's own 227 and show
        // the lost RETR's 150 and 226 as messages only; Zeek, which writes a command
        // out when the next one arrives, let those replies overwrite the PASV's reply
        // fields (226 Transfer complete), keeping its data channel.
        compare(
            stem,
            &run,
            &[Quirk {
                command: "PASV",
                zeek: 226,
                ours: 227,
                count: 2,
            }],
        );
        // Nine holes (233 bytes; Zeek's conn.log says missed_bytes 233 too), each
        // hiding a whole command or reply line.
        assert_eq!(run.gaps, 233);
        // Rows waiting when a reply went missing and the first command after a lost
        // one are marked; nine here.
        let marked: Vec<_> = run
            .rows
            .iter()
            .filter(|r| r.incomplete)
            .map(|r| (r.command.as_str(), r.reply_code))
            .collect();
        assert_eq!(marked.len(), 9, "{marked:?}");
        // Where both TYPE's `200` and the following `PASV` were lost, TYPE is paired
        // with the 227 (first in, first out). The row is marked incomplete and keeps
        // the announced endpoint, so the data connection can still be linked; Zeek,
        // which does not log TYPE, loses that PASV the same way (688 PASV rows both).
        let odd: Vec<_> = run
            .rows
            .iter()
            .filter(|r| r.command == "TYPE" && r.reply_code == Some(227))
            .collect();
        assert_eq!(odd.len(), 1);
        assert!(odd[0].incomplete);
        assert_eq!(odd[0].data.map(|d| d.port), Some(249 * 256 + 214));
        // The capture stops after a last `TYPE I`, before its reply.
        let (last, rest) = run.rows.split_last().unwrap();
        assert_eq!((last.command.as_str(), last.reply_code), ("TYPE", None));
        assert!(rest.iter().all(|r| r.reply_code.is_some()));
    }

    #[test]
    fn explicit_ftps_auth_tls() {
        let stem = "ftps_explicit_auth_tls__zeek";
        let Some(run) = run(stem) else { return };
        compare(stem, &run, &[]);
        assert!(run.ftp.encrypted());
        // FEAT (211 multi-line) and AUTH TLS, then only TLS.
        let got: Vec<_> = run
            .rows
            .iter()
            .map(|r| (r.command.as_str(), r.reply_code, r.reply_message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("FEAT", Some(211), "End"),
                ("AUTH", Some(234), "Proceed with negotiation.")
            ]
        );
        assert!(run.tls_bytes > 3000);
        assert_eq!(run.ftp.commands(), 2);
    }

    #[test]
    fn ftps_ccc_back_to_clear() {
        // nDPI's capture has no ftp.log; expectations from the clear text (tshark
        // "follow"): AUTH TLS -> 234, TLS (CCC inside), both close_notify, then PASV
        // and STOR in clear; the capture ends after STOR's 150. Eleven segments are
        // retransmitted (deduplicated by sequence number).
        let stem = "ftps_auth_tls_then_ccc_pasv_stor__ndpi";
        let Some(run) = run(stem) else { return };
        assert!(!run.ftp.encrypted());
        let got: Vec<_> = run
            .rows
            .iter()
            .map(|r| (r.command.as_str(), r.argument.as_str(), r.reply_code))
            .collect();
        assert_eq!(
            got,
            [
                ("AUTH", "TLS", Some(234)),
                ("PASV", "", Some(227)),
                (
                    "STOR",
                    "/export/home/sysm/ftproot/pm/NE39304/A20131030.1245+0400-1300+0400_EMS-SHORTPERIOD.mrf",
                    None
                ),
            ]
        );
        let d = run.rows[1].data.unwrap();
        assert_eq!(
            (d.ip.to_string(), d.port),
            ("10.220.50.76".to_string(), 16539)
        );
        assert_eq!(run.rows[2].preliminary, "150 Ok to send data.");
        assert_eq!(run.gaps, 0);
    }

    #[test]
    fn other_ftp_captures_decode_cleanly() {
        // No ftp.log for these (Suricata, nDPI); check that every command found a
        // reply and every accepted data command announced an endpoint.
        for stem in [
            "ftp_active_port_retr__suricata",
            "ftp_passive_pasv_retr__suricata",
            "ftp_ipv4_all_data_cmds_port_pasv__suricata",
            "ftp_epsv_mkd_stor_cloudshark__suricata",
            "ftp_pasv_ncftp_mlst_list__ndpi",
        ] {
            let Some(run) = run(stem) else { return };
            assert!(!run.rows.is_empty(), "{stem}");
            for r in &run.rows {
                if matches!(r.command.as_str(), "PORT" | "PASV" | "EPRT" | "EPSV")
                    && r.reply_code.is_some_and(|c| c < 300)
                    && r.argument != "ALL"
                {
                    assert!(r.data.is_some(), "{stem}: {r:?}");
                }
            }
            // Complete conversations ending in QUIT / 221, without gaps.
            assert_eq!(run.gaps, 0, "{stem}");
            assert!(
                run.rows
                    .iter()
                    .all(|r| r.reply_code.is_some() && !r.incomplete),
                "{stem}: {:?}",
                run.rows
            );
            assert_eq!(run.rows.last().map(|r| r.command.as_str()), Some("QUIT"));
            assert_eq!(run.ftp.login(), "ok");
        }
    }
}

/// Messages collapse whitespace and stop at MAX_MESSAGE characters (not bytes), with
/// an ellipsis; text keeps printable ASCII as it is and marks control characters.
#[test]
fn message_form_counts_characters() {
    assert_eq!(short("  RETR \t a   b "), "RETR a b");
    let long = "é".repeat(MAX_MESSAGE + 5);
    let s = short(&long);
    assert_eq!(s.chars().count(), MAX_MESSAGE + 1);
    assert!(s.ends_with("é…"));
    // Exactly the limit in characters but twice in bytes: kept whole.
    assert_eq!(short(&"é".repeat(MAX_MESSAGE)), "é".repeat(MAX_MESSAGE));
    assert_eq!(
        message("ftp command", &["PORT", "10,0,0,1,4,1"]),
        "ftp command PORT 10,0,0,1,4,1"
    );
    assert_eq!(text(b"230 ok\tdone"), "230 ok\tdone");
    assert_eq!(text(b"a\x7fb\x00c"), "a\u{FFFD}b\u{FFFD}c");
    assert_eq!(text("grüß".as_bytes()), "grüß");
}
