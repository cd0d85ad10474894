#!/bin/sh
# Regenerates the sample traces from the shared captures (see README.md here).
# Run from the repository root: sh samples/make.sh [path/to/captures]
set -eu
C=${1:-../shared/captures}
cargo build --release -q
Z=./target/release/zctrace
$Z synth "$C/ftp_ipv4_active_port_and_passive_pasv__zeek.pcap" -o samples/ftp_rdw.trace \
    --framing rdw --record-header 64
$Z synth "$C/tls12__zeek.pcap" -o samples/tls_raw_straddle.trace \
    --framing raw --record-header 64 --straddle
$Z synth "$C/ftps_explicit_auth_tls__zeek.pcap" -o samples/ftps_bdw_segmented.trace \
    --framing bdw --record-header 100 --max-cte 512 --spanned 1000 --straddle
$Z synth "$C/vlan_pcp_dei_mixed_tagging__zeek.pcapng" -o samples/osaenta_vlan.trace \
    --osaenta --discard 3=17
$Z synth "$C/tcp_fast_retransmit__zeek.pcap" -o samples/discards_abbrev.trace \
    --abbrev 200 --discard-every 5 --discard 2=4114 --interface TCPIPLNK
$Z synth "$C/ftp_ipv4_active_port_and_passive_pasv__zeek.pcap" -o samples/ftp_datatrace.trace \
    --data-trace --job FTPD1
# damaged.trace: ftp_rdw.trace with CTE 15's header (offset 5099, 16 bytes) overwritten
# with X'FF' and record 3's RDW (offset 8200) replaced by X'12345678'.
cp samples/ftp_rdw.trace samples/damaged.trace
printf '\377\377\377\377\377\377\377\377\377\377\377\377\377\377\377\377' |
    dd of=samples/damaged.trace bs=1 seek=5099 conv=notrunc status=none
printf '\022\064\126\170' | dd of=samples/damaged.trace bs=1 seek=8200 conv=notrunc status=none
# truncated.trace: the first 7000 bytes of tls_raw_straddle.trace (cut inside CTE 14).
head -c 7000 samples/tls_raw_straddle.trace > samples/truncated.trace
# pair_stack.trace + pair_osa.trace: the same FTP packets seen by the stack (packet
# trace) and by the adapter (OSAENTA), the adapter 25 us ahead inbound and behind
# outbound; capture frames 5 and 12 discarded by the OSA (codes 17, 3), 9 and 20 by
# the stack (4114, 8200). `zctrace convert --merge` relates them (path.csv).
$Z synth "$C/ftp_ipv4_active_port_and_passive_pasv__zeek.pcap" -o samples/pair_stack.trace \
    --pair samples/pair_osa.trace --osa-delay-ns 25000 \
    --drop-osa 5=17 --drop-osa 12=3 --drop-stack 9=4114 --drop-stack 20=8200
