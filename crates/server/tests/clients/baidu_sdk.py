"""Drive Baidu's official Python SDK (bce-python-sdk, TsdbClient) against Sundial's /v1 API.

Usage: baidu_sdk.py HOST PORT AK SK   (AK/SK must be a server credential allowed on the default database)

Writes known points, reads them back through every TsdbClient read call and checks each answer
against values computed here. Prints one JSON line of counts; exits 1 on any mismatch.

What bce-python-sdk 0.9.79 puts on the wire. Every request carries Host "HOST:PORT" (no port when
80), x-bce-date, User-Agent, Content-Type "application/json; charset=utf-8" and Content-Length (also
"Content-Length: 0" on GETs), no Accept, and "Authorization: bce-auth-v1/AK/TS/1800//SIG": an empty
signed-header list, so host, content-length, content-type, content-md5 and x-bce-* are signed
(Content-Encoding and User-Agent are not). The canonical URI is the path as sent (not re-encoded).
  write_datapoints(dps, use_gzip=True) -> POST /v1/datapoint, {"datapoints": dps}, gzipped + Content-Encoding: gzip
  get_metrics()                         -> GET /v1/metric
  get_fields(metric) / get_tags(metric) -> GET /v1/metric/{metric}/field | /tag  (metric not percent-encoded;
                                           get_tags has no start/end: added below via the client's _send_request)
  get_datapoints(queries, disable_presampling=False) -> PUT /v1/datapoint?disablePresampling=False&query=
                                           body {"queries": queries}, never gzipped
  get_rows_with_sql(sql)                -> GET /v1/row?sql=...
  generate_pre_signed_url(queries, timestamp=0, expiration_in_seconds=1800, disable_presampling=False, ...)
      -> http://HOST/v1/datapoint?authorization=...&disablePresampling=False&query=<JSON, %20 for spaces>,
         signing host only. Bug: on Python 3 it raises TypeError (bytes + str) when the endpoint has a
         non-default port, so we sign for http://HOST and fetch HOST:PORT sending "Host: HOST".
  TsdbClient(config, database=None): a database adds ?database=NAME to every request (not to presigned URLs).
Errors: the body must be JSON with message, code and requestId (else KeyError). The SDK raises
BceHttpClientError; .code/.status_code/.request_id are copied from the BceServerError in .last_error.
The default retry policy retries 500/503 and I/O errors 3 times; this script uses NoRetryPolicy.
Response JSON objects become baidubce.utils.Expando attributes of the BceResponse.
"""
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.exception import BceHttpClientError, BceServerError
from baidubce.http import http_methods
from baidubce.retry.retry_policy import NoRetryPolicy
from baidubce.services.tsdb import tsdb_handler
from baidubce.services.tsdb.tsdb_client import TsdbClient

HOST, PORT, AK, SK = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
T0, STEP, N = 1_600_000_000_000, 15_000, 10
END = T0 + (N - 1) * STEP
RACK = {"h0": "r0", "h1": "r0", "h2": "r1"}
STATES = ["ok", "warn", "ok", "fail", "warn"]
failures = []
stats = {"written": 0, "metadata": 0, "queries": 0, "presigned": 0, "auth_failures": 0}


def client(ak=AK, sk=SK, endpoint=f"http://{HOST}:{PORT}"):
    cfg = BceClientConfiguration(credentials=BceCredentials(ak, sk), endpoint=endpoint,
                                 retry_policy=NoRetryPolicy())
    return TsdbClient(cfg)


def plain(o):
    """Expando trees (what the SDK returns) back to dicts and lists."""
    if isinstance(o, list):
        return [plain(x) for x in o]
    if hasattr(o, "__dict__"):
        return {k: plain(v) for k, v in vars(o).items()}
    return o


def same(got, exp):
    """Equal JSON values; Long (int) and Double (float) must not be confused."""
    if isinstance(exp, float):
        return type(got) is float and abs(got - exp) <= 1e-9 * max(1.0, abs(exp))
    if isinstance(exp, dict):
        return isinstance(got, dict) and got.keys() == exp.keys() and all(same(got[k], exp[k]) for k in exp)
    if isinstance(exp, list):
        return isinstance(got, list) and len(got) == len(exp) and all(map(same, got, exp))
    return type(got) is type(exp) and got == exp


def check(what, got, exp):
    if not same(got, exp):
        failures.append(what)
        print(f"MISMATCH {what}\n  got:      {json.dumps(got)}\n  expected: {json.dumps(exp)}", file=sys.stderr)


def cpu(host):
    vals = {"h0": lambda i: 10 * i + 3, "h1": lambda i: 2.5 * i, "h2": lambda i: 100 - 7 * i}[host]
    return [[T0 + i * STEP, vals(i)] for i in range(N)]  # h0, h2 Long; h1 Double


WIND_T = [T0 + i * 60_000 for i in range(5)]
SPEED = {t: 1.5 + i for i, t in enumerate(WIND_T)}
DIR = {t: 90 * i for i, t in enumerate(WIND_T) if i != 2}  # one gap -> null in multi-field rows


def write(c):
    gz = [{"metric": "sdk_cpu", "tags": {"host": "h0", "rack": "r0"}, "values": cpu("h0")}]
    # h1: one point per datapoint; integral Doubles go out as integer literals with "type": "Double"
    gz += [{"metric": "sdk_cpu", "tags": {"host": "h1", "rack": "r0"}, "timestamp": t, "type": "Double",
            "value": int(v) if v.is_integer() else v} for t, v in cpu("h1")]
    gz += [{"metric": "sdk_wind", "field": "speed", "tags": {"site": "s1"}, "values": sorted(SPEED.items())},
           {"metric": "sdk_wind", "field": "dir", "tags": {"site": "s1"}, "type": "Long",
            "values": sorted(DIR.items())}]
    plain_body = [
        {"metric": "sdk_cpu", "tags": {"host": "h2", "rack": "r1"}, "values": cpu("h2")},
        {"metric": "sdk_cpu", "tags": {"host": "h3", "rack": "r2"}, "timestamp": T0 + 3_600_000, "value": 42},
        {"metric": "sdk_status", "field": "state", "tags": {"dev": "d1"}, "type": "String",
         "values": [[T0 + i * STEP, s] for i, s in enumerate(STATES)]},
    ]
    c.write_datapoints(gz)  # gzip is the SDK default
    c.write_datapoints(plain_body, use_gzip=False)
    for dp in gz + plain_body:
        stats["written"] += len(dp["values"]) if "values" in dp else 1


def metadata(c):
    metrics = c.get_metrics().metrics
    check("metrics sorted, contain ours", [metrics == sorted(metrics), {"sdk_cpu", "sdk_status", "sdk_wind"} <= set(metrics)],
          [True, True])
    num, txt = {"type": "Number"}, {"type": "String"}
    check("fields sdk_cpu", plain(c.get_fields("sdk_cpu").fields), {"value": num})
    check("fields sdk_wind", plain(c.get_fields("sdk_wind").fields), {"dir": num, "speed": num})
    check("fields sdk_status", plain(c.get_fields("sdk_status").fields), {"state": txt})
    check("tags sdk_cpu", plain(c.get_tags("sdk_cpu").tags),
          {"host": ["h0", "h1", "h2", "h3"], "rack": ["r0", "r1", "r2"]})
    # TsdbClient.get_tags takes no range: send the same signed GET with start/end through the client.
    ranged = c._send_request(http_methods.GET, b"/v1/metric/sdk_cpu/tag", params={"start": T0, "end": END},
                             body_parser=tsdb_handler.parse_json)
    check("tags sdk_cpu start..end", plain(ranged.tags), {"host": ["h0", "h1", "h2"], "rack": ["r0", "r1"]})
    stats["metadata"] += 6


def result(metric, groups, raw, consumed=None, field="value", truncated=False):
    r = {"metric": metric, ("fields" if isinstance(field, list) else "field"): field,
         "rawCount": raw, "consumedCount": raw if consumed is None else consumed, "groups": groups}
    if truncated is not None:  # present only without groupBy/aggregators
        r["truncated"] = truncated
    return r


def one(values):
    return [{"groupInfos": [], "values": values}]


def buckets(points, size):
    """Range-aggregator buckets anchored at the query start T0: {bucket_ts: [values...]}."""
    out = {}
    for t, v in sorted(points, key=lambda p: p[0]):
        out.setdefault(T0 + (t - T0) // size * size, []).append(v)
    return sorted(out.items())


def query(c, queries, expected, names):
    stats["queries"] += len(queries)
    got = plain(c.get_datapoints(queries).results)
    if not isinstance(got, list) or len(got) != len(queries):
        check("result count", got, expected)
        return got
    for name, g, e in zip(names, got, expected):
        check(name, g, e)
    return got


def raw_queries(c):
    rng = {"start": T0, "end": END}
    h0f = [p for p in cpu("h0") if p[1] >= 50]
    warn = [[T0 + i * STEP, s] for i, s in enumerate(STATES) if s == "warn"]
    wind = [[t, SPEED[t], DIR.get(t)] for t in WIND_T]
    qs = [
        {"metric": "sdk_cpu", "filters": {**rng, "tags": {"host": ["h1"]}}},
        {"metric": "sdk_cpu", "filters": {**rng, "tags": {"host": ["h2"]}}, "order": "Desc"},
        {"metric": "sdk_cpu", "filters": {**rng, "tags": {"host": ["h0"]}, "value": ">= 50"}},
        {"metric": "sdk_status", "field": "state", "filters": {**rng, "value": "= 'warn'"}},
        {"metric": "sdk_wind", "fields": ["speed", "dir"], "filters": {"start": T0, "end": WIND_T[-1]}},
    ]
    exp = [
        result("sdk_cpu", one(cpu("h1")), N),
        result("sdk_cpu", one(cpu("h2")[::-1]), N),
        result("sdk_cpu", one(h0f), len(h0f), consumed=N),
        result("sdk_status", one(warn), len(warn), consumed=len(STATES), field="state"),
        result("sdk_wind", one(wind), len(SPEED) + len(DIR), field=["speed", "dir"]),
    ]
    query(c, qs, exp, ["raw h1", "raw h2 Desc", "h0 value >= 50", "status = 'warn'", "wind speed+dir"])
    return qs[0], exp[0]


def paged(c):
    """limit 4 over h0: follow nextMarker until truncated is false."""
    q = {"metric": "sdk_cpu", "filters": {"start": T0, "end": END, "tags": {"host": ["h0"]}}, "limit": 4}
    rows, pages = [], 0
    while pages < 5:
        stats["queries"] += 1
        pages += 1
        r = plain(c.get_datapoints([q]).results)[0]
        rows += r["groups"][0]["values"] if r.get("groups") else []
        if r.get("truncated") is not True:
            check("last page has no nextMarker", "nextMarker" in r, False)
            break
        q = {**q, "marker": r.get("nextMarker")}
    check("paged h0 rows", rows, cpu("h0"))
    check("paged h0 page count", pages, 3)


def aggregated(c):
    rng = {"start": T0, "end": END}
    every = cpu("h0") + cpu("h1") + cpu("h2")
    sum_all = [[t, sum(vs)] for t, vs in buckets(every, 60_000)]  # h1 is Double -> Double sums
    sum_h0 = [[t, sum(vs)] for t, vs in buckets(cpu("h0"), 60_000)]  # all Long -> Long sums
    by_host = [{"groupInfos": [{"name": "Tag", "tags": {"host": h}}],
                "values": [[T0, sum(v for _, v in cpu(h)) / N]]} for h in sorted(RACK)]

    def max_of(pts):  # Long only if every input is Long
        m = max(v for _, v in pts)
        return float(m) if any(isinstance(v, float) for _, v in pts) else m

    by_rack = [{"groupInfos": [{"name": "Tag", "tags": {"rack": r}}],
                "values": [[T0, max_of([p for h in RACK if RACK[h] == r for p in cpu(h)])]]}
               for r in sorted(set(RACK.values()))]
    sum1m = [{"name": "Sum", "sampling": "1 minute"}]
    qs = [
        {"metric": "sdk_cpu", "filters": rng, "aggregators": sum1m},
        {"metric": "sdk_cpu", "filters": {**rng, "tags": {"host": ["h0"]}}, "aggregators": sum1m},
        {"metric": "sdk_cpu", "filters": rng, "groupBy": [{"name": "Tag", "tags": ["host"]}],
         "aggregators": [{"name": "Avg"}]},
        {"metric": "sdk_cpu", "filters": rng, "groupBy": [{"name": "Tag", "tags": ["rack"]}],
         "aggregators": [{"name": "Max"}]},
    ]
    exp = [
        result("sdk_cpu", one(sum_all), 3 * N, truncated=None),
        result("sdk_cpu", one(sum_h0), N, truncated=None),
        result("sdk_cpu", by_host, 3 * N, truncated=None),
        result("sdk_cpu", by_rack, 3 * N, truncated=None),
    ]
    query(c, qs, exp, ["Sum 1 minute", "Sum 1 minute h0", "Avg by host", "Max by rack"])


def presigned(q, exp):
    url = client(endpoint=f"http://{HOST}").generate_pre_signed_url([q])
    parts = urllib.parse.urlsplit(url)
    check("presigned URL shape", [parts.path, sorted(urllib.parse.parse_qs(parts.query))],
          ["/v1/datapoint", ["authorization", "disablePresampling", "query"]])
    fetch = parts._replace(netloc=f"{HOST}:{PORT}").geturl()
    req = urllib.request.Request(fetch, headers={"Host": HOST})  # the Host the SDK signed
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body, rid = json.loads(resp.read()), resp.headers.get("x-bce-request-id")
    except urllib.error.HTTPError as e:
        failures.append("presigned GET")
        print(f"presigned GET {fetch} -> {e.code} {e.read()!r}", file=sys.stderr)
        return
    check("presigned GET body", body, {"results": [exp]})
    check("presigned GET has x-bce-request-id", bool(rid), True)
    stats["presigned"] += 1


def auth_failure(what, c, code, status):
    try:
        c.get_metrics()
        got = "no error"
    except BceHttpClientError as e:
        got = [e.code, e.status_code, isinstance(e.last_error, BceServerError)]
    check(what, got, [code, status, True])
    if got == [code, status, True]:
        stats["auth_failures"] += 1


def main():
    c = client()
    write(c)
    metadata(c)
    q, exp = raw_queries(c)
    paged(c)
    aggregated(c)
    presigned(q, exp)
    auth_failure("wrong secret key", client(sk=SK + "x"), "SignatureDoesNotMatch", 400)
    # An unknown key answers like a wrong signature (issue 14: keys cannot be probed for).
    auth_failure("unknown access key", client(ak="sundial-unknown-ak"), "SignatureDoesNotMatch", 400)
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}", file=sys.stderr)
        sys.exit(1)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
