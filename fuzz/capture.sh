#!/usr/bin/env bash
# Captures the request frames of real DHCP clients (udhcpc, dhclient,
# dhcpcd) into fuzz/corpus/handler/capture-*, as seeds for the `handler`
# fuzz target. No server is needed: each client runs in a network namespace
# of its own on one end of a veth pair, tcpdump listens on the other end in
# a second namespace, and each client is stopped after a few seconds
# (DISCOVERs, and the INIT-REBOOT REQUEST of a dhclient that remembers a
# lease). Nothing leaves the two namespaces this script creates and removes.
# Root only. Usage: fuzz/capture.sh
set -euo pipefail
cd "$(dirname "$0")"
out=corpus/handler
tag="fzc$$"
cli="$tag-cli"
cap="$tag-cap"
tmp=$(mktemp -d)

cleanup() {
    ip netns pids "$cli" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns pids "$cap" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    ip netns del "$cap" 2>/dev/null || true
    rm -rf "$tmp" "/etc/netns/$cli"
}
trap cleanup EXIT

ip netns add "$cli"
ip netns add "$cap"
ip link add "${tag}a" type veth peer name "${tag}b"
ip link set "${tag}a" netns "$cli"
ip link set "${tag}b" netns "$cap"
ip -n "$cli" link set "${tag}a" up
ip -n "$cap" link set "${tag}b" up
# Client scripts may write resolv.conf: give them the namespace's own.
mkdir -p "/etc/netns/$cli"
touch "/etc/netns/$cli/resolv.conf"

# Runs "$@" in the client namespace for at most $1 seconds while tcpdump
# records what reaches UDP port 67, then writes each frame to
# $out/capture-<name>-<n>.
capture() {
    local name=$1 secs=$2
    shift 2
    local pcap="$tmp/$name.pcap"
    ip netns exec "$cap" tcpdump -q -U -i "${tag}b" -w "$pcap" 'udp dst port 67' 2>/dev/null &
    local dump=$!
    sleep 1
    ip netns exec "$cli" timeout "$secs" "$@" >/dev/null 2>&1 || true
    sleep 1
    kill "$dump"
    wait "$dump" 2>/dev/null || true
    python3 - "$pcap" "$out/capture-$name" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic = struct.unpack("<I", data[:4])[0]
end = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
at, n, seen = 24, 0, set()
while at + 16 <= len(data):
    _, _, incl, _ = struct.unpack(end + "IIII", data[at:at + 16])
    frame = data[at + 16:at + 16 + incl]
    at += 16 + incl
    if frame in seen:
        continue
    seen.add(frame)
    n += 1
    open(f"{sys.argv[2]}-{n}", "wb").write(frame)
print(f"{sys.argv[2]}: {n} distinct frames")
EOF
}

ifc="${tag}a"
capture udhcpc 6 udhcpc -f -q -n -i "$ifc" -t 3 -T 1 -s /bin/true
capture udhcpc-opts 6 udhcpc -f -q -n -i "$ifc" -t 2 -T 1 -s /bin/true \
    -r 10.0.0.150 -x hostname:fuzz-seed -V irondhcp-fuzz -O 42 -O 119 -O 121 -B

# dhclient with a remembered lease starts in INIT-REBOOT (a REQUEST with
# option 50), then falls back to DISCOVER.
cat >"$tmp/dhclient.leases" <<EOF
lease {
  interface "$ifc";
  fixed-address 10.0.0.150;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 10.0.0.1;
  option dhcp-lease-time 3600;
  renew 4 2037/01/01 00:00:00;
  rebind 4 2037/01/01 00:00:00;
  expire 4 2037/01/01 00:00:00;
}
EOF
capture dhclient 8 dhclient -d -4 -1 -lf "$tmp/dhclient.leases" -pf "$tmp/dhclient.pid" \
    -sf /bin/true "$ifc"

printf 'noipv4ll\nnoarp\noption rapid_commit\nhostname fuzz-seed\nclientid\n' >"$tmp/dhcpcd.conf"
capture dhcpcd 8 dhcpcd -4 -B -1 -t 5 -f "$tmp/dhcpcd.conf" -c /bin/true "$ifc"
