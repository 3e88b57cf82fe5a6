#!/usr/bin/env python3
"""A scripted SMTP client for the submission tests: raw lines, STARTTLS and
the checks swaks cannot make (what EHLO leaves out, bytes pipelined after
STARTTLS, the certificate a listener serves).

usage: smtp_dialog.py HOST PORT SOURCE_ADDRESS STEP...

Steps, in order (TEXT may hold \\r, \\n and \\0 escapes):
  expect:PREFIX  read one reply; it must start with PREFIX
  has:TEXT       the last reply contains TEXT
  lacks:TEXT     the last reply does not contain TEXT
  send:TEXT      send TEXT and CRLF
  raw:TEXT       send TEXT as it is, in one write
  b64:TEXT       send base64(TEXT) and CRLF (a SASL response)
  auth-plain:TEXT  send "AUTH PLAIN " + base64(TEXT) and CRLF
  starttls       start TLS on the connection (no certificate check)
  fingerprint    print "fingerprint SHA256HEX" of the server's certificate
  closed         the server has closed the connection

Prints the dialogue ("C: ", "S: "); exits 1 with "FAILED: ..." at the
first step that does not hold.
"""
import base64
import hashlib
import socket
import ssl
import sys


def unescape(text):
    return text.replace("\\r", "\r").replace("\\n", "\n").replace("\\0", "\0")


class Dialog:
    def __init__(self, host, port, source):
        self.sock = socket.create_connection((host, port), timeout=30,
                                             source_address=(source, 0))
        self.buffer = b""
        self.last = ""

    def read_reply(self):
        lines = []
        while True:
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise EOFError("connection closed by the server")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\n", 1)
            text = line.decode("utf-8", "replace").rstrip("\r")
            print("S: " + text)
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    def send(self, data):
        shown = data.decode("utf-8", "replace").replace("\r\n", "\\r\\n")
        print("C: " + shown)
        self.sock.sendall(data)


def main():
    host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    d = Dialog(host, port, source)
    for step in sys.argv[4:]:
        verb, _, arg = step.partition(":")
        arg = unescape(arg)
        if verb == "expect":
            d.last = d.read_reply()
            if not d.last.startswith(arg):
                sys.exit("FAILED: expected %r, got %r" % (arg, d.last))
        elif verb == "has":
            if arg not in d.last:
                sys.exit("FAILED: %r not in %r" % (arg, d.last))
        elif verb == "lacks":
            if arg in d.last:
                sys.exit("FAILED: %r in %r" % (arg, d.last))
        elif verb == "send":
            d.send(arg.encode() + b"\r\n")
        elif verb == "raw":
            d.send(arg.encode())
        elif verb == "b64":
            d.send(base64.b64encode(arg.encode()) + b"\r\n")
        elif verb == "auth-plain":
            d.send(b"AUTH PLAIN " + base64.b64encode(arg.encode()) + b"\r\n")
        elif verb == "starttls":
            if d.buffer:
                sys.exit("FAILED: bytes after the STARTTLS reply: %r" % d.buffer)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            d.sock = context.wrap_socket(d.sock)
            print("-- TLS %s %s" % (d.sock.version(), d.sock.cipher()[0]))
        elif verb == "fingerprint":
            der = d.sock.getpeercert(binary_form=True)
            print("fingerprint " + hashlib.sha256(der).hexdigest())
        elif verb == "closed":
            try:
                d.last = d.read_reply()
            except (EOFError, ConnectionResetError, ssl.SSLError):
                continue
            sys.exit("FAILED: expected the connection to be closed, got %r" % d.last)
        else:
            sys.exit("FAILED: unknown step " + step)
    print("OK")


if __name__ == "__main__":
    main()
