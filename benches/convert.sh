#!/usr/bin/env bash
# Benchmark: zctrace convert on a large synthesized trace, side by side with the read
# and read+write floors (cat, cp) and with Wireshark's tools on the equivalent pcap.
#
#   benches/convert.sh [SIZE]       SIZE of the trace, default 1G (K/M/G suffixes)
#
# Prints wall seconds, throughput and peak memory (max RSS) per command: the fastest of
# REPEAT runs (default 3; the tshark analyses run once), because this kind of machine
# (a VM sharing its host) slows down by half now and then. All runs are warm-cache: the
# files are read once before timing so every command pays the same, and each starts
# after a `sync`, so that none pays for the writeback of an earlier command's output
# (without it `cp` took from 0.26 s to 1.4 s depending on what ran before). Outputs
# land in the page cache; the time to disk is not included.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1G}
# Many short connections (FTP control and data, active and passive): each repetition gets
# new ports, so the trace holds hundreds of thousands of sessions, as a busy stack's would.
CAPTURE=${CAPTURE:-../shared/captures/ftp_ipv4_all_data_cmds_port_pasv__suricata.pcap}
WORK=${WORK:-$(mktemp -d /tmp/zctrace-bench.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT

for t in editcap tshark /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install tshark time)"; exit 2; }
done
cargo build --release --quiet
Z=target/release/zctrace

echo "making a $SIZE trace from $(basename "$CAPTURE") ..."
$Z synth "$CAPTURE" -o "$WORK/big.trace" --framing rdw --record-header 64 --record-length 32000 \
  --straddle --target-size "$SIZE" --vary-flows >/dev/null
# The equivalent pcap: the same packets, by zctrace itself (Ethernet, so that tcptrace
# reads it too), then editcap to classic microsecond pcap, the format every peer reads.
$Z convert "$WORK/big.trace" -o "$WORK/ref" --quiet --no-csv --libpcap
editcap -F pcap "$WORK/ref/big.trace.pcap" "$WORK/big.pcap"
rm -rf "$WORK/ref"
bytes=$(stat -c %s "$WORK/big.trace")
pbytes=$(stat -c %s "$WORK/big.pcap")
packets=$(capinfos -c -M "$WORK/big.pcap" | awk -F: '/Number of packets/ {gsub(/ /,"",$2); print $2}')
cat "$WORK/big.trace" "$WORK/big.pcap" >/dev/null

# run LABEL INPUT_BYTES OUTPUT COMMAND...: times COMMAND $REPEAT times (OUTPUT, a file or
# directory, removed before each run and after the last) and prints the fastest run's
# wall time and throughput and the largest peak RSS. Each run starts with no dirty pages
# of an earlier one still being written back (writeback of the previous command's output
# otherwise throttles the next writer).
REPEAT=${REPEAT:-3}
declare -A BEST
run() {
  local label=$1 in=$2 out=$3; shift 3
  local best="" rssmax=0 i secs rss
  for ((i = 0; i < ${TIMES:-$REPEAT}; i++)); do
    [ -n "$out" ] && rm -rf "$out"
    sync
    local t0 t1
    t0=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$WORK/t" "$@" >/dev/null 2>"$WORK/err" || { echo "$label failed:"; cat "$WORK/err"; return; }
    t1=$(date +%s%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    read -r rss <"$WORK/t"
    if [ -z "$best" ] || awk -v a="$secs" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$secs; fi
    [ "$rss" -gt "$rssmax" ] && rssmax=$rss
  done
  [ -n "$out" ] && rm -rf "$out"
  BEST["$label"]=$best
  awk -v l="$label" -v s="$best" -v r="$rssmax" -v b="$in" \
    'BEGIN { printf "%-38s %8.2f s %9.0f MB/s %8.1f MiB\n", l, s, (s > 0 ? b / s / 1e6 : 0), r / 1024 }'
}

echo
echo "trace: $bytes bytes, pcap: $pbytes bytes, $packets packets ($(nproc) cores)"
printf "%-38s %10s %14s %12s\n" command wall throughput "peak RSS"
run "cat trace (read floor)" "$bytes" "" cat "$WORK/big.trace"
run "cp trace (read+write floor)" "$bytes" "$WORK/copy" cp "$WORK/big.trace" "$WORK/copy"
run "dd bs=1M (user-space copy)" "$bytes" "$WORK/copy" dd if="$WORK/big.trace" of="$WORK/copy" bs=1M status=none
run "editcap -F pcapng (pcap)" "$pbytes" "$WORK/e.pcapng" editcap -F pcapng "$WORK/big.pcap" "$WORK/e.pcapng"
run "tshark -r pcap -w pcapng" "$pbytes" "$WORK/t.pcapng" tshark -r "$WORK/big.pcap" -w "$WORK/t.pcapng"
run "zctrace convert --no-csv (pcapng)" "$bytes" "$WORK/out" $Z convert "$WORK/big.trace" -o "$WORK/out" --quiet --no-csv
run "zctrace convert --libpcap --no-csv" "$bytes" "$WORK/out" $Z convert "$WORK/big.trace" -o "$WORK/out" --quiet --libpcap --no-csv
run "zctrace info (decode only)" "$bytes" "" $Z info "$WORK/big.trace"
# Issue 2's target: within 1.25x of cp, about 4x editcap's throughput.
awk -v z="${BEST[zctrace convert --no-csv (pcapng)]}" -v c="${BEST[cp trace (read+write floor)]}" \
  -v d="${BEST[dd bs=1M (user-space copy)]}" -v e="${BEST[editcap -F pcapng (pcap)]}" \
  -v b="$bytes" -v pb="$pbytes" 'BEGIN {
    printf "zctrace convert took %.2fx the time of cp and %.2fx that of dd;", z / c, z / d
    printf " its throughput was %.1fx editcap'"'"'s (target: within 1.25x of cp, about 4x editcap)\n", (b / z) / (pb / e) }'

echo
echo "analysis (issue 3): sessions and per-packet tables"
printf "%-38s %10s %14s %12s\n" command wall throughput "peak RSS"
if [ "${SKIP_SLOW:-0}" != 1 ]; then
  TIMES=1 run "tshark -q -z conv,tcp (pcap)" "$pbytes" "" tshark -r "$WORK/big.pcap" -q -z conv,tcp
  TIMES=1 run "tshark -T fields CSV (pcap)" "$pbytes" "" tshark -r "$WORK/big.pcap" -T fields -E separator=, -E header=y \
    -e frame.number -e frame.time_epoch -e ip.src -e ipv6.src -e tcp.srcport -e udp.srcport \
    -e ip.dst -e ipv6.dst -e tcp.dstport -e udp.dstport -e ip.proto -e ip.len -e ip.id -e ip.ttl \
    -e tcp.flags.str -e tcp.seq_raw -e tcp.ack_raw -e tcp.window_size_value -e tcp.len -e tcp.stream \
    -e _ws.col.Info
fi
if command -v tcptrace >/dev/null; then
  run "tcptrace -n -l (pcap)" "$pbytes" "" tcptrace -n -l "$WORK/big.pcap"
fi
run "zctrace analyze (all 6 CSVs)" "$bytes" "$WORK/out" $Z analyze "$WORK/big.trace" -o "$WORK/out" --quiet
run "zctrace convert (pcapng + CSVs)" "$bytes" "$WORK/out" $Z convert "$WORK/big.trace" -o "$WORK/out" --quiet

echo
echo "merge (issue 4): a packet trace and the OSAENTA trace of the same packets (synth --pair)"
printf "%-38s %10s %14s %12s\n" command wall throughput "peak RSS"
# The same repetitions in both (--repeat, not --target-size, whose byte count differs
# between the two kinds of record); about SIZE/2 of packet trace.
$Z synth "$CAPTURE" -o "$WORK/one.trace" --framing rdw --record-header 64 --record-length 32000 \
  --straddle >/dev/null
reps=$(( bytes / 2 / $(stat -c %s "$WORK/one.trace") + 1 ))
$Z synth "$CAPTURE" -o "$WORK/stack.trace" --pair "$WORK/osa.trace" --framing rdw --record-header 64 \
  --record-length 32000 --straddle --repeat "$reps" >/dev/null
mbytes=$(( $(stat -c %s "$WORK/stack.trace") + $(stat -c %s "$WORK/osa.trace") ))
cat "$WORK/stack.trace" "$WORK/osa.trace" >/dev/null
run "cp both traces (read+write floor)" "$mbytes" "$WORK/cp" sh -c 'mkdir -p "$1" && cp "$2" "$3" "$1/"' - "$WORK/cp" "$WORK/stack.trace" "$WORK/osa.trace"
run "zctrace convert --merge --no-csv" "$mbytes" "$WORK/out" $Z convert --merge "$WORK/stack.trace" "$WORK/osa.trace" -o "$WORK/out" --quiet --no-csv
run "zctrace convert --merge (+ path.csv)" "$mbytes" "$WORK/out" $Z convert --merge "$WORK/stack.trace" "$WORK/osa.trace" -o "$WORK/out" --quiet
