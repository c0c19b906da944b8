"""Drive real OpenTSDB clients from PyPI against a running Sundial.

Usage: opentsdb_clients.py HOST PORT

Writes with opentsdb-py (HTTP with gzip and ?details, and telnet), potsdb
(telnet) and pyopentsdb (HTTP put, POST /api/query/, /api/version), then
reads everything back through pyopentsdb and checks each value against what
this script sent. Prints one JSON line with the points written per client;
exits non-zero on any mismatch.
"""
import datetime
import json
import sys
import time

import opentsdb
import potsdb
from pyopentsdb import tsdb as pyopentsdb_tsdb

HOST, PORT = sys.argv[1], int(sys.argv[2])
T0 = 1_650_000_000
N = 40


def expected(client, i):
    # Distinct per client and point; potsdb sends ints when the float is integral.
    base = {"opentsdb_http": 0.25, "opentsdb_telnet": 1000, "potsdb": 2000, "pyopentsdb": 3000.5}[client]
    return base + i


def write_all():
    http = opentsdb.TSDBClient(HOST, PORT, protocol=opentsdb.TSDBConnectProtocols.HTTP, host_tag=False)
    telnet = opentsdb.TSDBClient(HOST, PORT, protocol=opentsdb.TSDBConnectProtocols.TELNET, host_tag=False)
    pots = potsdb.Client(HOST, port=PORT, host_tag=False)
    for i in range(N):
        http.send("clients.opentsdb_http", expected("opentsdb_http", i), timestamp=T0 + i, client="opentsdb-py")
        telnet.send("clients.opentsdb_telnet", expected("opentsdb_telnet", i), timestamp=T0 + i, client="opentsdb-py")
        pots.log("clients.potsdb", expected("potsdb", i), timestamp=T0 + i, client="potsdb")
    http.close()
    telnet.close()
    http.wait()
    telnet.wait()
    pots.wait()
    if http.statuses["failed"]:
        raise SystemExit(f"opentsdb-py HTTP reported failures: {http.statuses}")

    conn = pyopentsdb_tsdb.TsdbConnector(f"http://{HOST}:{PORT}")
    version = conn.version()
    if "version" not in version:
        raise SystemExit(f"unexpected /api/version reply {version}")
    data = [
        {"metric": "clients.pyopentsdb", "timestamp": T0 + i, "value": expected("pyopentsdb", i),
         "tags": {"client": "pyopentsdb"}}
        for i in range(N)
    ]
    # pyopentsdb 0.2.1 passes put flags on to requests (a client bug), so
    # its users call put() bare: 204, which it returns as None.
    reply = conn.put(data)
    if reply is not None:
        raise SystemExit(f"pyopentsdb put answered {reply}")
    return conn


def read_back(conn, client):
    start = datetime.datetime.fromtimestamp(T0, datetime.timezone.utc)
    end = datetime.datetime.fromtimestamp(T0 + N, datetime.timezone.utc)
    # Telnet clients are fire-and-forget: give the server a moment.
    for _ in range(50):
        result = conn.query(start=start, end=end,
                            metrics=[{"metric": f"clients.{client}", "aggregator": "none"}])
        dps = result[0]["dps"] if result else {}
        if len(dps) == N:
            break
        time.sleep(0.1)
    for i in range(N):
        got = dps.get(str(T0 + i))
        if got != expected(client, i):
            raise SystemExit(f"{client}: point {T0 + i} is {got!r}, sent {expected(client, i)!r}")
    return len(dps)


def main():
    conn = write_all()
    counts = {c: read_back(conn, c) for c in ["opentsdb_http", "opentsdb_telnet", "potsdb", "pyopentsdb"]}
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
