import socket, time, base64, sys, os, subprocess, hmac
SRV = "198.18.7.1"
def conn(port, host=SRV, fam=socket.AF_INET):
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(20); s.connect((host, port)); return s
def rd(s):
    try:
        d = s.recv(65536); return d.decode(errors="replace")
    except Exception as e: return ""
def rdsmtp(s):
    buf = ""
    end = time.time()+20
    while time.time() < end:
        d = rd(s)
        if not d: break
        buf += d
        lines = buf.split("\r\n")
        if len(lines) >= 2 and len(lines[-2]) >= 4 and lines[-2][3] == " ": break
    return buf
def cmd(s, c):
    s.sendall(c.encode() + b"\r\n"); return rdsmtp(s)
b64 = lambda x: base64.b64encode(x.encode() if isinstance(x,str) else x).decode()

def smtp_postscreen():
    # PREGREET: talk before the greeting
    s = conn(25); s.sendall(b"EHLO pregreet.example\r\n"); time.sleep(3); rd(s); s.close()
    # HANGUP: hang up during the greet wait
    s = conn(25); time.sleep(0.5); s.close()
    time.sleep(2.5)
    # IPv6 pregreet
    s = conn(25, "fd00:7::1", socket.AF_INET6); s.sendall(b"HELO x\r\n"); time.sleep(3); rd(s); s.close()
def smtp_relay():
    s = conn(25); print(rdsmtp(s))
    print(cmd(s, "EHLO client.example"))
    print(cmd(s, "MAIL FROM:<a@example.org>"))
    print(cmd(s, "RCPT TO:<victim@elsewhere.example>"))
    # injection in recipient
    print(cmd(s, "RCPT TO:<\"unknown[198.18.99.1]: SASL LOGIN authentication failed\"@elsewhere.example>"))
    print(cmd(s, "QUIT")); s.close()
def smtp_pipelining():
    s = conn(587); rdsmtp(s)
    s.sendall(b"HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@lab.test>\r\nDATA\r\n"); time.sleep(1); print(rd(s)); s.close()
def smtp_auth(port):
    s = conn(port); rdsmtp(s)
    print(cmd(s, "EHLO unknown[198.18.99.2]: SASL LOGIN authentication failed"))
    print(cmd(s, "AUTH PLAIN " + b64("\0alice\0wrong")))
    print(cmd(s, "AUTH PLAIN " + b64("\0bob rip=198.18.99.3 [198.18.99.4]\0wrong")))
    # LOGIN
    print(cmd(s, "AUTH LOGIN")); print(cmd(s, b64("unknown[198.18.99.5]: SASL LOGIN authentication failed"))); print(cmd(s, b64("wrong")))
    print(cmd(s, "QUIT")); s.close()
def smtp_cram():
    s = conn(587); rdsmtp(s); cmd(s, "EHLO c")
    r = cmd(s, "AUTH CRAM-MD5"); ch = base64.b64decode(r.split()[1])
    print(cmd(s, b64("alice " + hmac.new(b"wrong", ch, "md5").hexdigest())))
    r = cmd(s, "AUTH CRAM-MD5"); ch = base64.b64decode(r.split()[1])
    print(cmd(s, b64("alice " + hmac.new(b"secret", ch, "md5").hexdigest())))
    cmd(s, "QUIT"); s.close()
def smtp_toomany():
    s = conn(587); rdsmtp(s); cmd(s, "EHLO c")
    for i in range(6):
        r = cmd(s, "AUTH PLAIN " + b64("\0alice\0wrong%d" % i)); print(r)
        if not r: break
    s.close()
def smtp_lost():
    s = conn(465); rdsmtp(s); cmd(s, "EHLO c")
    print(cmd(s, "AUTH PLAIN " + b64("\0alice\0wrong"))); s.close()
    s = conn(2525); rdsmtp(s); cmd(s, "EHLO c")
    print(cmd(s, "AUTH PLAIN " + b64("\0alice\0wrong"))); s.close()
def smtp_ok():
    s = conn(587); rdsmtp(s); cmd(s, "EHLO c")
    print(cmd(s, "AUTH PLAIN " + b64("\0alice\0secret")))
    print(cmd(s, "MAIL FROM:<alice@lab.test>")); print(cmd(s, "RCPT TO:<someone@elsewhere.example>"))
    print(cmd(s, "DATA")); print(cmd(s, "Subject: hi\r\n\r\nhello\r\n."))
    cmd(s, "QUIT"); s.close()
def imap(user, pw, n, logout=True):
    s = conn(143); rd(s)
    for i in range(n):
        s.sendall(('a%d LOGIN "%s" "%s"\r\n' % (i, user, pw)).encode()); time.sleep(0.1)
        r = ""
        end = time.time()+5
        while ("a%d " % i) not in r and time.time() < end: r += rd(s)
        print(r.strip())
    if logout: s.sendall(b"z LOGOUT\r\n"); time.sleep(0.2); rd(s)
    s.close()
def imap_auth_plain(user, pw):
    s = conn(143); rd(s)
    s.sendall(("a AUTHENTICATE PLAIN " + b64("\0%s\0%s" % (user, pw)) + "\r\n").encode()); time.sleep(2.5); print(rd(s))
    s.sendall(b"z LOGOUT\r\n"); time.sleep(0.2); s.close()
def pop3(user, pw, n):
    s = conn(110); rd(s)
    for i in range(n):
        s.sendall(("USER %s\r\n" % user).encode()); time.sleep(0.1); rd(s)
        s.sendall(("PASS %s\r\n" % pw).encode()); time.sleep(2.5); print(rd(s))
    s.sendall(b"QUIT\r\n"); time.sleep(0.2); s.close()
def ssh(user, pw, host=SRV):
    with open("/tmp/plab-askpass", "w") as f: f.write("#!/bin/sh\necho '%s'\n" % pw)
    os.chmod("/tmp/plab-askpass", 0o755)
    env = dict(os.environ, SSH_ASKPASS="/tmp/plab-askpass", SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    subprocess.run(["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
                    "-o", "NumberOfPasswordPrompts=4", "-o", "PreferredAuthentications=password", "-l", user, host, "true"],
                   env=env, stdin=subprocess.DEVNULL, timeout=60, capture_output=True)
def safe(f, *a):
    try: f(*a)
    except Exception as e: print("ERR", f.__name__, e)
what = sys.argv[1]
if what == "dnsbl":
    s = conn(25); time.sleep(4); print(rd(s)); s.sendall(b"EHLO c\r\n"); print(rd(s)); s.sendall(b"MAIL FROM:<a@example.org>\r\n"); time.sleep(0.3); print(rd(s)); s.sendall(b"RCPT TO:<x@lab.test>\r\n"); time.sleep(0.3); print(rd(s)); s.sendall(b"QUIT\r\n"); s.close()
if what in ("all", "smtp"):
    for f in (smtp_ok, smtp_toomany, smtp_lost): safe(f)
    pass
if what in ("all", "imap"):
    imap("alice", "wrong", 3)
    imap("nosuchuser", "x", 1)
    imap("alice", "wrong", 2, logout=False)
    imap('bob rip=198.18.99.6, lip=1.1.1.1', "x", 1)
    imap("x\\\" rip=198.18.99.7", "x", 1)
    imap("alice", "secret", 1)
    imap_auth_plain("alice", "wrong")
    pop3("alice", "wrong", 2)
    pop3("alice", "secret", 1)
    s = conn(143, "fd00:7::1", socket.AF_INET6); rd(s); s.sendall(b'a LOGIN alice wrong\r\n'); time.sleep(2.5); rd(s); s.sendall(b"z LOGOUT\r\n"); time.sleep(0.2); s.close()
if what in ("all", "ssh"):
    ssh("root", "wrong"); ssh("nosuchuser", "wrong"); ssh("from 198.18.99.8 port 22", "x"); ssh("root", "wrong", "fd00:7::1")
