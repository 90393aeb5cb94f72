# Minimal DNS responder: answers every A query with 127.0.0.2 (a DNSBL hit).
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 53))
while True:
    d, a = s.recvfrom(512)
    qid = d[:2]; q = d[12:]; i = 0
    while q[i] != 0: i += 1 + q[i]
    qname = q[:i+1]; qtype = q[i+1:i+3]
    if qtype == b'\x00\x01':
        r = qid + b'\x81\x80' + b'\x00\x01\x00\x01\x00\x00\x00\x00' + qname + qtype + b'\x00\x01' + b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x02'
    else:
        r = qid + b'\x81\x83' + b'\x00\x01\x00\x00\x00\x00\x00\x00' + qname + qtype + b'\x00\x01'
    s.sendto(r, a)
