#!/usr/bin/env python3
"""Fan-out load against an IRC server on loopback: N clients join one channel,
one of them pipelines M messages, the time until every other client has all of
them gives msgs/s and deliveries/s. Every phase has a deadline."""
import argparse, selectors, socket, ssl, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--clients", type=int, default=20)
ap.add_argument("--messages", type=int, default=50000)
ap.add_argument("--timeout", type=float, default=120.0)
ap.add_argument("--oper", action="store_true", help="OPER the sender and set +F (relaxed flood control)")
ap.add_argument("--window", type=int, default=0,
                help="keep at most N lines unanswered: a PING after every N/4 lines, its PONG acknowledges them "
                     "(the analogue of urc's window; 0 = pipeline every line at once)")
ap.add_argument("--tls", action="store_true",
                help="connect with TLS (Python's ssl module; the server's certificate is not verified: loopback, self-signed)")
ap.add_argument("--tls-record", type=int, default=2048,
                help="with --tls, the sender's lines go in TLS records of at most this many bytes, cut between lines: "
                     "ngircd reads 2048 bytes (READBUFFER_LEN) a socket event and never looks for decrypted bytes left "
                     "in GnuTLS's buffer, so the rest of a larger record waits for the next event (forever at the end)")
a = ap.parse_args()
if a.tls:
    TLS_CTX = ssl.create_default_context()
    TLS_CTX.check_hostname = False
    TLS_CTX.verify_mode = ssl.CERT_NONE
CHAN = b"#bench"


def lines_until(sock, token, deadline):
    buf = b""
    while token not in buf:
        if time.time() > deadline:
            raise TimeoutError(token)
        data = sock.recv(65536)
        if not data:
            raise EOFError(buf[-200:])
        buf += data
        for line in data.split(b"\r\n"):
            if line.startswith(b"PING"):
                sock.sendall(b"PONG" + line[4:] + b"\r\n")


deadline = time.time() + 30
socks = []
for i in range(a.clients):
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if a.tls:
        s = TLS_CTX.wrap_socket(s, server_hostname="bench.local")
    s.sendall(b"NICK c%d\r\nUSER u%d 0 * :bench\r\n" % (i, i))
    socks.append(s)
for s in socks:
    lines_until(s, b" 001 ", deadline)
    s.sendall(b"JOIN " + CHAN + b"\r\n")
for s in socks:
    lines_until(s, b" 366 ", deadline)
sender, receivers = socks[0], socks[1:]
if a.tls:
    print(f"tls version={sender.version()} cipher={sender.cipher()[0]}", flush=True)
if a.oper:
    sender.sendall(b"OPER bench benchpw\r\n")
    lines_until(sender, b" 381 ", deadline)
    sender.sendall(b"MODE c0 +F\r\n")
    lines_until(sender, b"+F", deadline)

counts = {s.fileno(): 0 for s in receivers}
tails = {s.fileno(): b"" for s in receivers}
sel = selectors.DefaultSelector()
for s in receivers:
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
payload = b"".join(b"PRIVMSG #bench :hello world message %06d\r\n" % k for k in range(a.messages))
def send_lines(sock, data):
    """sendall, but with --tls in records of at most --tls-record bytes of whole lines."""
    if not a.tls:
        sock.sendall(data)
        return
    start = 0
    while start < len(data):
        end = len(data) if len(data) - start <= a.tls_record else data.rfind(b"\n", start, start + a.tls_record) + 1
        if end <= start:
            end = start + a.tls_record
        sock.sendall(data[start:end])
        start = end


def send_windowed(sock, n, window):
    """Sends n lines in chunks of window/4, each followed by a PING; waits for the PONG of the chunk
    sent window lines earlier before it sends more, so at most `window` lines are unanswered."""
    chunk = max(1, window // 4)
    sent_chunks, acked, buf = 0, -1, b""
    deadline = time.time() + a.timeout
    for start in range(0, n, chunk):
        lines = b"".join(b"PRIVMSG #bench :hello world message %06d\r\n" % k for k in range(start, min(n, start + chunk)))
        send_lines(sock, lines + b"PING :w%d\r\n" % sent_chunks)
        sent_chunks += 1
        while sent_chunks - 1 - acked >= 4 and time.time() < deadline:
            buf += sock.recv(65536)
            *done, buf = buf.split(b"\r\n")
            for line in done:
                if b"PONG" in line and b":w" in line:
                    acked = max(acked, int(line.rsplit(b":w", 1)[1]))
                elif line.startswith(b"PING"):
                    sock.sendall(b"PONG" + line[4:] + b"\r\n")


t0 = time.time()
if a.window:
    threading.Thread(target=send_windowed, args=(sender, a.messages, a.window), daemon=True).start()
else:
    threading.Thread(target=send_lines, args=(sender, payload), daemon=True).start()
done = None
while time.time() - t0 < a.timeout:
    for key, _ in sel.select(0.2):
        s = key.fileobj
        try:
            data = s.recv(262144)
            if a.tls and data:
                parts = [data]
                while True:
                    try:
                        more = s.recv(262144)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        break
                    if not more:
                        break
                    parts.append(more)
                data = b"".join(parts)
        except (BlockingIOError, ssl.SSLWantReadError):
            continue
        if not data:
            sel.unregister(s)
            continue
        buf = tails[s.fileno()] + data
        cut = buf.rfind(b"\n") + 1
        whole, tails[s.fileno()] = buf[:cut], buf[cut:]
        counts[s.fileno()] += whole.count(b" PRIVMSG #bench :")
        if b"PING" in whole:
            for line in whole.split(b"\r\n"):
                if line.startswith(b"PING"):
                    s.sendall(b"PONG" + line[4:] + b"\r\n")
    if min(counts.values()) >= a.messages:
        done = time.time()
        break
elapsed = (done or time.time()) - t0
delivered = sum(counts.values())
print(f"complete={done is not None} clients={a.clients} messages={a.messages} "
      f"elapsed={elapsed:.3f}s msgs/s={min(counts.values()) / elapsed:.0f} "
      f"deliveries/s={delivered / elapsed:.0f}")
