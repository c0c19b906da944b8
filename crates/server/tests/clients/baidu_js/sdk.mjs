// Drive Baidu's official JavaScript SDK (@baiducloud/sdk, TsdbDataClient) against Sundial's /v1 API.
//
// Usage: node sdk.mjs HOST PORT AK SK   (AK/SK must be a server credential allowed on the default database)
//
// Writes known points, reads them back through every TsdbDataClient read call and checks each answer
// against values computed here. Prints one JSON line of counts; exits 1 on any mismatch.
//
// What @baiducloud/sdk 1.0.7 puts on the wire. Every request carries Host "HOST:PORT", User-Agent,
// x-bce-date, "Connection: close", "Content-Type: application/json; charset=UTF-8", Content-Length
// (not on body-less GETs) and "Authorization: bce-auth-v1/AK/TS/1800/host;x-bce-date/SIG" (signs host and
// every x-bce-* header). The canonical URI is the path as given; the canonical query string is
// name=encodeURIComponent(value), while the URL itself also escapes ( ) ' ! ~ . * - _ as lowercase %xx
// (metricName=js%5fcpu). Query parameters in the order below.
//   writeDatapoints(dps, useGzip)   -> POST /v1/datapoint?query=  {"datapoints": dps}; gzip + Content-Encoding:
//                                      gzip unless useGzip === false
//   getMetrics()                    -> GET /v1/metric?query=
//   getFields(m) / getTags(m)       -> GET /v1/metric/{m}/field|tag?metricName={m}&query=  (m not encoded in
//                                      the path; getTags has no range: start/end added via client.sendRequest)
//   getDatapoints(queries, {disablePresampling}) -> PUT /v1/datapoint?query=&disablePresampling=false|true
//                                      body {"queries": queries}, never gzipped
//   getRowsWithSql(sql)             -> GET /v1/row?sql=...   (not used: Sundial has no SQL yet)
//   generatePresignedUrl(queries)   -> ENDPOINT/v1/datapoint?query=<JSON>&disablePresampling=false&authorization=...
//                                      signing host only ("HOST:PORT", taken from the endpoint)
//   new TsdbDataClient(config, db): a database adds &database=db to every request (not to presigned URLs).
// Config is {endpoint, credentials: {ak, sk}}; there is no retry. A call resolves to {http_headers, body}
// (JSON bodies parsed, so Long 5 and Double 5.0 look alike) or rejects with {status_code, message, code,
// request_id} (code and request_id only when the error body has a requestId).
import sdk from '@baiducloud/sdk';

const [HOST, PORT, AK, SK] = process.argv.slice(2);
if (!SK) {
  console.error('usage: node sdk.mjs HOST PORT AK SK');
  process.exit(2);
}
const ENDPOINT = `http://${HOST}:${PORT}`;
const T0 = 1_600_000_000_000, STEP = 15_000, N = 10;
const END = T0 + (N - 1) * STEP;
const RACK = { h0: 'r0', h1: 'r0', h2: 'r1' };
const STATES = ['ok', 'warn', 'ok', 'fail', 'warn'];
const failures = [];
const stats = { written: 0, metadata: 0, queries: 0, presigned: 0, auth_failures: 0 };

const client = (ak = AK, sk = SK, db) => new sdk.TsdbDataClient({ endpoint: ENDPOINT, credentials: { ak, sk } }, db);

// Expected Doubles are wrapped as {$d: x}; the SDK's answers only show numbers, the raw presigned body is
// parsed with parseTyped so that there Long and Double must not be confused.
const dbl = (x) => ({ $d: x });
const isD = (v) => v !== null && typeof v === 'object' && '$d' in v;
const num = (v) => (isD(v) ? v.$d : v);
const close = (a, b) => typeof a === 'number' && Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

function parseTyped(text) {
  const tok = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
  return JSON.parse(text.replace(tok, (t) => (t[0] !== '"' && /[.eE]/.test(t) ? `{"$d":${t}}` : t)));
}

function same(got, exp, typed) {
  if (isD(exp)) return typed ? isD(got) && close(got.$d, exp.$d) : close(got, exp.$d);
  if (typeof exp === 'number') return typeof got === 'number' && got === exp;
  if (Array.isArray(exp)) {
    return Array.isArray(got) && got.length === exp.length && exp.every((e, i) => same(got[i], e, typed));
  }
  if (exp !== null && typeof exp === 'object') {
    if (got === null || typeof got !== 'object' || Array.isArray(got) || isD(got)) return false;
    const gk = Object.keys(got).sort(), ek = Object.keys(exp).sort();
    return same(gk, ek) && ek.every((k) => same(got[k], exp[k], typed));
  }
  return got === exp;
}

function check(what, got, exp, typed = false) {
  if (!same(got, exp, typed)) {
    failures.push(what);
    console.error(`MISMATCH ${what}\n  got:      ${JSON.stringify(got)}\n  expected: ${JSON.stringify(exp)}`);
  }
}

function cpu(host) {
  const f = { h0: (i) => 10 * i + 3, h1: (i) => dbl(2.5 * i), h2: (i) => 100 - 7 * i }[host];
  return Array.from({ length: N }, (_, i) => [T0 + i * STEP, f(i)]); // h0, h2 Long; h1 Double
}
const plainValues = (pts) => pts.map(([t, v]) => [t, num(v)]);

const WIND_T = Array.from({ length: 5 }, (_, i) => T0 + i * 60_000);
const SPEED = new Map(WIND_T.map((t, i) => [t, dbl(1.5 + i)]));
const DIR = new Map(WIND_T.flatMap((t, i) => (i === 2 ? [] : [[t, 90 * i]]))); // one gap -> null

async function write(c) {
  const gz = [{ metric: 'js_cpu', tags: { host: 'h0', rack: 'r0' }, values: cpu('h0') }];
  // h1: one point per datapoint; JSON.stringify turns 5.0 into 5, so "type": "Double" keeps the kind
  gz.push(...cpu('h1').map(([t, v]) => ({ metric: 'js_cpu', tags: { host: 'h1', rack: 'r0' }, timestamp: t,
    type: 'Double', value: num(v) })));
  gz.push({ metric: 'js_wind', field: 'speed', tags: { site: 's1' }, values: plainValues([...SPEED]) },
    { metric: 'js_wind', field: 'dir', tags: { site: 's1' }, type: 'Long', values: [...DIR] });
  const plainBody = [
    { metric: 'js_cpu', tags: { host: 'h2', rack: 'r1' }, values: cpu('h2') },
    { metric: 'js_cpu', tags: { host: 'h3', rack: 'r2' }, timestamp: T0 + 3_600_000, value: 42 },
    { metric: 'js_status', field: 'state', tags: { dev: 'd1' }, type: 'String',
      values: STATES.map((s, i) => [T0 + i * STEP, s]) },
  ];
  for (const [body, useGzip] of [[gz, undefined], [plainBody, false]]) { // gzip is the SDK default
    const r = await c.writeDatapoints(body, useGzip);
    check(`write (gzip ${useGzip !== false}) x-bce-request-id`, !!r.http_headers['x-bce-request-id'], true);
    for (const dp of body) stats.written += dp.values ? dp.values.length : 1;
  }
}

async function expectError(what, call, code, status) {
  let got = 'no error';
  try {
    await call();
  } catch (e) {
    got = [e.code, e.status_code, typeof e.request_id === 'string'];
  }
  check(what, got, [code, status, true]);
  return same(got, [code, status, true]);
}

async function metadata(c) {
  const metrics = (await c.getMetrics()).body.metrics;
  check('metrics sorted, contain ours',
    [same(metrics, [...metrics].sort()), ['js_cpu', 'js_status', 'js_wind'].every((m) => metrics.includes(m))],
    [true, true]);
  const numT = { type: 'Number' }, txt = { type: 'String' };
  check('fields js_cpu', (await c.getFields('js_cpu')).body.fields, { value: numT });
  check('fields js_wind', (await c.getFields('js_wind')).body.fields, { dir: numT, speed: numT });
  check('fields js_status', (await c.getFields('js_status')).body.fields, { state: txt });
  check('tags js_cpu', (await c.getTags('js_cpu')).body.tags,
    { host: ['h0', 'h1', 'h2', 'h3'], rack: ['r0', 'r1', 'r2'] });
  // getTags takes no range: send the same signed GET with start/end through the client.
  const ranged = await c.sendRequest('GET', '/v1/metric/js_cpu/tag', { params: { start: T0, end: END } });
  check('tags js_cpu start..end', ranged.body.tags, { host: ['h0', 'h1', 'h2'], rack: ['r0', 'r1'] });
  await expectError('fields of unknown metric', () => c.getFields('js_nope'), 'ResourceNotFound', 404);
  // The client's database argument (&database=...): the default database by name, and an unknown one.
  check('metrics via database=default', (await client(AK, SK, 'default').getMetrics()).body.metrics, metrics);
  await expectError('unknown database', () => client(AK, SK, 'js_nodb').getMetrics(), 'ResourceNotFound', 404);
  stats.metadata += 9;
}

function result(metric, groups, raw, { consumed = raw, field = 'value', truncated = false } = {}) {
  const r = { metric, [Array.isArray(field) ? 'fields' : 'field']: field, rawCount: raw, consumedCount: consumed,
    groups };
  if (truncated !== null) r.truncated = truncated; // present only without groupBy/aggregators
  return r;
}
const one = (values) => [{ groupInfos: [], values }];

// Range-aggregator buckets anchored at the query start T0: [[bucket_ts, [values...]], ...].
function buckets(points, size) {
  const out = new Map();
  for (const [t, v] of [...points].sort((a, b) => a[0] - b[0])) {
    const b = T0 + Math.floor((t - T0) / size) * size;
    out.set(b, [...(out.get(b) || []), v]);
  }
  return [...out].sort((a, b) => a[0] - b[0]);
}
const anyD = (vs) => vs.some(isD);
const sumOf = (vs) => { const s = vs.reduce((a, v) => a + num(v), 0); return anyD(vs) ? dbl(s) : s; };
const maxOf = (vs) => { const m = Math.max(...vs.map(num)); return anyD(vs) ? dbl(m) : m; }; // Long iff all Long

async function query(c, queries, expected, names, opts) {
  stats.queries += queries.length;
  const got = (await c.getDatapoints(queries, opts)).body.results;
  if (!Array.isArray(got) || got.length !== queries.length) return check('result count', got, expected);
  names.forEach((name, i) => check(name, got[i], expected[i]));
}

async function rawQueries(c) {
  const rng = { start: T0, end: END };
  const h0f = cpu('h0').filter(([, v]) => v >= 50);
  const warn = STATES.flatMap((s, i) => (s === 'warn' ? [[T0 + i * STEP, s]] : []));
  const wind = WIND_T.map((t) => [t, SPEED.get(t), DIR.has(t) ? DIR.get(t) : null]);
  const qs = [
    { metric: 'js_cpu', filters: { ...rng, tags: { host: ['h1'] } } },
    { metric: 'js_cpu', filters: { ...rng, tags: { host: ['h2'] } }, order: 'Desc' },
    { metric: 'js_cpu', filters: { ...rng, tags: { host: ['h0'] }, value: '>= 50' } },
    { metric: 'js_status', field: 'state', filters: { ...rng, value: "= 'warn'" } },
    { metric: 'js_wind', fields: ['speed', 'dir'], filters: { start: T0, end: WIND_T[4] } },
  ];
  const exp = [
    result('js_cpu', one(cpu('h1')), N),
    result('js_cpu', one(cpu('h2').reverse()), N),
    result('js_cpu', one(h0f), h0f.length, { consumed: N }),
    result('js_status', one(warn), warn.length, { consumed: STATES.length, field: 'state' }),
    result('js_wind', one(wind), SPEED.size + DIR.size, { field: ['speed', 'dir'] }),
  ];
  await query(c, qs, exp, ['raw h1', 'raw h2 Desc', 'h0 value >= 50', "status = 'warn'", 'wind speed+dir']);
  return [qs[0], exp[0]];
}

async function paged(c) { // limit 4 over h0: follow nextMarker until truncated is false
  let q = { metric: 'js_cpu', filters: { start: T0, end: END, tags: { host: ['h0'] } }, limit: 4 };
  let rows = [], pages = 0;
  while (pages < 5) {
    stats.queries += 1;
    pages += 1;
    const r = (await c.getDatapoints([q], { disablePresampling: true })).body.results[0];
    rows = rows.concat(r.groups && r.groups.length ? r.groups[0].values : []);
    if (r.truncated !== true) {
      check('last page has no nextMarker', 'nextMarker' in r, false);
      break;
    }
    q = { ...q, marker: r.nextMarker };
  }
  check('paged h0 rows', rows, cpu('h0'));
  check('paged h0 page count', pages, 3);
}

async function aggregated(c) {
  const rng = { start: T0, end: END };
  const every = [...cpu('h0'), ...cpu('h1'), ...cpu('h2')];
  const sumAll = buckets(every, 60_000).map(([t, vs]) => [t, sumOf(vs)]); // h1 is Double -> Double sums
  const sumH0 = buckets(cpu('h0'), 60_000).map(([t, vs]) => [t, sumOf(vs)]); // all Long -> Long sums
  const byHost = Object.keys(RACK).sort().map((h) => ({ groupInfos: [{ name: 'Tag', tags: { host: h } }],
    values: [[T0, dbl(cpu(h).reduce((a, [, v]) => a + num(v), 0) / N)]] }));
  const byRack = [...new Set(Object.values(RACK))].sort().map((r) => ({
    groupInfos: [{ name: 'Tag', tags: { rack: r } }],
    values: [[T0, maxOf(Object.keys(RACK).filter((h) => RACK[h] === r).flatMap((h) => cpu(h).map((p) => p[1])))]] }));
  const sum1m = [{ name: 'Sum', sampling: '1 minute' }];
  const qs = [
    { metric: 'js_cpu', filters: rng, aggregators: sum1m },
    { metric: 'js_cpu', filters: { ...rng, tags: { host: ['h0'] } }, aggregators: sum1m },
    { metric: 'js_cpu', filters: rng, groupBy: [{ name: 'Tag', tags: ['host'] }], aggregators: [{ name: 'Avg' }] },
    { metric: 'js_cpu', filters: rng, groupBy: [{ name: 'Tag', tags: ['rack'] }], aggregators: [{ name: 'Max' }] },
  ];
  const agg = { truncated: null };
  const exp = [
    result('js_cpu', one(sumAll), 3 * N, agg),
    result('js_cpu', one(sumH0), N, agg),
    result('js_cpu', byHost, 3 * N, agg),
    result('js_cpu', byRack, 3 * N, agg),
  ];
  await query(c, qs, exp, ['Sum 1 minute', 'Sum 1 minute h0', 'Avg by host', 'Max by rack']);
}

async function presigned(c, q, exp) {
  const url = new URL(c.generatePresignedUrl([q]));
  check('presigned URL shape', [url.host, url.pathname, [...url.searchParams.keys()].sort()],
    [`${HOST}:${PORT}`, '/v1/datapoint', ['authorization', 'disablePresampling', 'query']]);
  const resp = await fetch(url); // no Authorization header: the signature is in the URL
  const text = await resp.text();
  if (resp.status !== 200) {
    failures.push('presigned GET');
    console.error(`presigned GET ${url} -> ${resp.status} ${text}`);
    return;
  }
  check('presigned GET body (typed)', parseTyped(text), { results: [exp] }, true);
  check('presigned GET has x-bce-request-id', !!resp.headers.get('x-bce-request-id'), true);
  stats.presigned += 1;
}

async function main() {
  const c = client();
  await write(c);
  await metadata(c);
  const [q, exp] = await rawQueries(c);
  await paged(c);
  await aggregated(c);
  await presigned(c, q, exp);
  for (const [what, cl, code, status] of [
    ['wrong secret key', client(AK, SK + 'x'), 'SignatureDoesNotMatch', 400],
    // An unknown key answers like a wrong signature (issue 14: keys cannot be probed for).
    ['unknown access key', client('sundial-unknown-ak', SK), 'SignatureDoesNotMatch', 400],
  ]) {
    if (await expectError(what, () => cl.getMetrics(), code, status)) stats.auth_failures += 1;
  }
  if (failures.length) {
    console.error(`${failures.length} check(s) failed: ${JSON.stringify(failures)}`);
    process.exit(1);
  }
  console.log(JSON.stringify(stats));
}

main().catch((e) => {
  console.error('unexpected error:', e instanceof Error ? e.stack : JSON.stringify(e));
  process.exit(1);
});
