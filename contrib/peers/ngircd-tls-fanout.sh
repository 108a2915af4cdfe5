#!/usr/bin/env bash
# A copy of the peer script ngircd-fanout.sh (../shared/peers) whose clients all connect over TLS:
# ngircd (Debian's package, GnuTLS) with a self-signed certificate made for the run,
# its TLS port on 127.0.0.1, and ircload.py (the copy beside this script) given --tls.
# Runs ngircd (Debian's IRC server, flood control off) on loopback and measures
# fan-out on the same workload as urc's benchmark: 20 clients in one room, one
# sender pipelines 50,000 short messages, time until all others have them all.
# usage: [NGIRCD_TLS_CIPHERS=PRIORITY] ngircd-tls-fanout.sh [--clients N] [--messages M]
# NGIRCD_TLS_CIPHERS: a GnuTLS priority string for ngircd's CipherList, e.g.
# NORMAL:-CIPHER-ALL:+CHACHA20-POLY1305 instead of GnuTLS's default (AES-256-GCM here, urc's AEAD)
# The last line it prints is the figure: deliveries/s=...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${NGIRCD_ROOT:-/tmp/urc-peers/ngircd}
mkdir -p "$root/debs"
if [ ! -x "$root/usr/sbin/ngircd" ]; then
  # Unpacked rather than installed, so no init script starts a daemon.
  (cd "$root/debs" && { apt-get download ngircd libident >/dev/null 2>&1 ||
     { apt-get update >/dev/null && apt-get download ngircd libident >/dev/null; }; })
  for f in "$root"/debs/*.deb; do dpkg -x "$f" "$root"; done
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tlsport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
run=$(mktemp -d "${TMPDIR:-/tmp}/ngircd-tls-XXXXXX")
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.local \
  -keyout "$run/key.pem" -out "$run/cert.pem" >/dev/null 2>&1
openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048 -out "$run/dh.pem" >/dev/null 2>&1
conf="$run/bench.conf"
cat >"$conf" <<CONF
[Global]
	Name = bench.local
	Info = urc peer benchmark
	Listen = 127.0.0.1
	Ports = $port
	MotdPhrase = "bench"
	PidFile = $run/ngircd.pid
[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxPenaltyTime = 0
	PingTimeout = 300
	PongTimeout = 60
[Options]
	DNS = no
	Ident = no
	PAM = no
	OperCanUseMode = yes
[SSL]
	CertFile = $run/cert.pem
	KeyFile = $run/key.pem
	DHFile = $run/dh.pem
	Ports = $tlsport
${NGIRCD_TLS_CIPHERS:+	CipherList = $NGIRCD_TLS_CIPHERS}
[Operator]
	Name = bench
	Password = benchpw
CONF
LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu" "$root/usr/sbin/ngircd" -n -f "$conf" >"$run/ngircd.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; cp "$run/ngircd.log" "$root/ngircd-tls.log" 2>/dev/null; rm -rf "$run"' EXIT
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1',$tlsport),1)" 2>/dev/null && break
  sleep 0.1
done
timeout 180 python3 "$here/ircload.py" --port "$tlsport" --tls --oper "$@"
