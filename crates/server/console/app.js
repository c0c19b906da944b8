// The Sundial console: one page over the server's own APIs. OpenTSDB and
// admin routes get HTTP Basic, /v1 routes a bce-auth-v1 signature made
// here with WebCrypto (as Baidu's SDKs sign), BlueKing routes the ESB
// app code and secret: the console is a client like any other.
'use strict';

const $ = (id) => document.getElementById(id);
const utf8 = new TextEncoder();
const EXAMPLES = {
  opentsdb: '{\n  "queries": [{"metric": "sys.cpu.user", "aggregator": "none"}]\n}',
  baidu: '{\n  "queries": [{"metric": "cpu", "field": "value", "filters": {"start": 0}}]\n}',
  sql: 'SELECT timestamp, host, value FROM "sys.cpu.user" ORDER BY timestamp LIMIT 1000',
};
// What the tests read: the last answer as drawn and tabled.
const state = { key: null, chart: null, timer: null, last: null, runs: 0 };
window.sundialConsole = state;

// ---------- credentials and requests ----------

try { state.key = JSON.parse(sessionStorage.getItem('sundial-key') || 'null'); } catch (_) { state.key = null; }

class ApiError extends Error {
  constructor(source, status, message) {
    super(`${source} answered ${status}: ${message}`);
    this.source = source;
    this.status = status;
  }
}

function askKey(reason) {
  return new Promise((resolve) => {
    $('login-reason').textContent = reason;
    const dialog = $('login');
    dialog.onclose = () => {
      state.key = { ak: $('login-ak').value.trim(), sk: $('login-sk').value };
      sessionStorage.setItem('sundial-key', JSON.stringify(state.key));
      showWho();
      resolve();
    };
    dialog.showModal();
  });
}

function showWho() {
  $('who').textContent = state.key ? `key ${state.key.ak}` : '';
  $('logout').hidden = !state.key;
}

// RFC 3986 unreserved characters stay, everything else is %XX of UTF-8.
function bceEncode(text, keepSlash) {
  let out = '';
  for (const b of utf8.encode(text)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === '/')) out += c;
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

async function hmacHex(key, message) {
  const k = await crypto.subtle.importKey('raw', utf8.encode(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sig = await crypto.subtle.sign('HMAC', k, utf8.encode(message));
  return Array.from(new Uint8Array(sig), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function bceAuthorization(method, path, params) {
  if (!crypto.subtle) throw new Error('signing /v1 requests needs HTTPS or a loopback address');
  const timestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const prefix = `bce-auth-v1/${state.key.ak}/${timestamp}/1800`;
  const signingKey = await hmacHex(state.key.sk, prefix);
  const query = params.map(([k, v]) => `${bceEncode(k)}=${bceEncode(v ?? '')}`).sort().join('&');
  const canonical = `${method}\n${bceEncode(path, true)}\n${query}\nhost:${bceEncode(location.host)}`;
  return `${prefix}/host/${await hmacHex(signingKey, canonical)}`;
}

// params: [name, value] pairs; a null value is a bare flag (`?query`).
async function call(source, scheme, method, path, params = [], body = undefined, retried = false) {
  const qs = params.map(([k, v]) => (v === null ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join('&');
  // X-Requested-With: the server then answers 401 without a Basic
  // challenge, and the browser leaves asking for the key to this page.
  const headers = { 'Content-Type': 'application/json', 'X-Requested-With': 'sundial-console' };
  if (scheme === 'bk') {
    // ESB wants an app code and secret even when the server has no keys
    // (then any non-empty pair passes).
    const [code, secret] = state.key ? [state.key.ak, state.key.sk] : ['sundial-console', '-'];
    headers['X-Bkapi-Authorization'] = JSON.stringify({ bk_app_code: code, bk_app_secret: secret, bk_username: 'admin' });
  } else if (state.key) {
    if (scheme === 'bce') headers.Authorization = await bceAuthorization(method, path, params);
    else headers.Authorization = 'Basic ' + btoa(`${state.key.ak}:${state.key.sk}`);
  }
  const response = await fetch(path + (qs ? `?${qs}` : ''), { method, headers, body });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  const refused = response.status === 401 || (response.status === 403 && !state.key)
    || (scheme === 'bk' && json && json.code === 1306000 && /APP (Code|Secret)/.test(json.message || ''));
  if (refused && !retried) {
    await askKey(state.key ? `${source} refused the key: ${errorText(json, text)}` : `${source} needs credentials.`);
    return call(source, scheme, method, path, params, body, true);
  }
  if (!response.ok || (scheme === 'bk' && json && json.result === false)) {
    throw new ApiError(source, response.status, errorText(json, text));
  }
  return json;
}

// Each API's error body, as one line.
function errorText(json, text) {
  if (!json) return text || '(empty body)';
  if (json.error) return [json.error.message, json.error.details].filter(Boolean).join(': ');
  if (json.message) return [json.code, json.message].filter((x) => x !== undefined && x !== '').join(' ');
  return text;
}

const database = () => $('database').value.trim() || 'default';

// ---------- query tab ----------

function rangeMs() {
  const r = $('range').value;
  if (r === 'statement') return null;
  if (r === 'custom') {
    const from = Date.parse($('from').value + 'Z');
    const to = $('to').value ? Date.parse($('to').value + 'Z') : Date.now();
    if (Number.isNaN(from)) throw new Error('pick a start time');
    return [from, to];
  }
  const now = Date.now();
  return [now - Number(r) * 1000, now];
}

function tagText(tags) {
  return Object.keys(tags || {}).sort().map((k) => `${k}=${tags[k]}`).join(',');
}

function fromOpenTsdb(answer, msKeys) {
  const series = [];
  const rows = [];
  for (const s of answer || []) {
    const label = `${s.metric}{${tagText(s.tags)}}`;
    const dps = Array.isArray(s.dps) ? s.dps : Object.entries(s.dps || {}).map(([t, v]) => [Number(t), v]);
    const points = dps.map(([t, v]) => [msKeys ? t : t * 1000, v]).sort((a, b) => a[0] - b[0]);
    series.push({ label, points });
    for (const [t, v] of points) rows.push([s.metric, tagText(s.tags), t, v]);
  }
  return { series, columns: ['metric', 'tags', 'timestamp', 'value'], rows };
}

function fromBaidu(answer) {
  const series = [];
  const rows = [];
  let columns = ['metric', 'group', 'timestamp'];
  for (const r of answer.results || []) {
    const fields = r.field ? [r.field] : (r.fields || ['value']);
    columns = ['metric', 'group', 'timestamp', ...fields];
    for (const g of r.groups || []) {
      const group = (g.groupInfos || []).map((i) => tagText(i.tags)).filter(Boolean).join(';');
      fields.forEach((f, i) => {
        const points = (g.values || []).map((v) => [v[0], v[i + 1]]);
        series.push({ label: `${r.metric}.${f}{${group}}`, points });
      });
      for (const v of g.values || []) rows.push([r.metric, group, ...v]);
    }
  }
  return { series, columns, rows };
}

// SQL rows draw when a column is a time: each numeric column a line per
// combination of the text columns.
function fromSql(answer) {
  const columns = (answer.columns || []).map((c) => c.name);
  const rows = answer.rows || [];
  const timeAt = columns.findIndex((c) => /^(time|timestamp|ts|bucket)$/i.test(c));
  const series = [];
  if (timeAt >= 0 && rows.length) {
    const numeric = columns.map((_, i) => i !== timeAt && rows.every((r) => r[i] === null || typeof r[i] === 'number'));
    const text = columns.map((_, i) => i !== timeAt && !numeric[i]);
    const byLabel = new Map();
    for (const r of rows) {
      const t = typeof r[timeAt] === 'number' ? r[timeAt] : Date.parse(r[timeAt]);
      const group = columns.filter((_, i) => text[i]).map((c) => `${c}=${r[columns.indexOf(c)]}`).join(',');
      columns.forEach((c, i) => {
        if (!numeric[i]) return;
        const label = group ? `${c}{${group}}` : c;
        if (!byLabel.has(label)) byLabel.set(label, []);
        byLabel.get(label).push([t, r[i]]);
      });
    }
    for (const [label, points] of byLabel) series.push({ label, points: points.sort((a, b) => a[0] - b[0]) });
  }
  return { series, columns, rows };
}

const COLORS = ['#1f77b4', '#e45756', '#54a24b', '#f58518', '#72b7b2', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac', '#4c78a8'];

function draw(series) {
  if (state.chart) { state.chart.destroy(); state.chart = null; }
  $('chart').innerHTML = '';
  if (!series.length) return;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const data = [xs.map((x) => x / 1000)];
  for (const s of series) {
    const ys = new Array(xs.length).fill(null);
    for (const [t, v] of s.points) ys[at.get(t)] = typeof v === 'number' ? v : null;
    data.push(ys);
  }
  const opts = {
    width: Math.max(400, $('chart').clientWidth || 900),
    height: 320,
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true } },
    series: [{ label: 'time' }, ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], spanGaps: true, points: { show: xs.length < 200 } }))],
  };
  state.chart = new uPlot(opts, data, $('chart'));
}

function fillTable(table, columns, rows, limit = 2000) {
  const head = `<tr>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = rows.slice(0, limit).map((r) => `<tr>${r.map((v) => `<td>${escapeHtml(v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v))}</td>`).join('')}</tr>`).join('');
  table.innerHTML = head + body;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function showError(e) {
  $('error').hidden = false;
  $('error').textContent = e.source ? e.message : `Error: ${e.message}`;
}

async function runQuery() {
  $('error').hidden = true;
  const lang = $('lang').value;
  const started = performance.now();
  try {
    const range = rangeMs();
    const db = database();
    let shaped;
    if (lang === 'opentsdb') {
      const body = JSON.parse($('statement').value);
      if (range) { body.start = range[0]; body.end = range[1]; }
      if (body.start === undefined) throw new Error('the query needs a start (or pick a range)');
      const ms = Boolean(body.msResolution || body.ms);
      shaped = fromOpenTsdb(await call('OpenTSDB /api/query', 'basic', 'POST', '/api/query', [['database', db]], JSON.stringify(body)), ms);
    } else if (lang === 'baidu') {
      const body = JSON.parse($('statement').value);
      for (const q of body.queries || []) {
        if (range) q.filters = { ...(q.filters || {}), start: range[0], end: range[1] };
      }
      shaped = fromBaidu(await call('Baidu /v1/datapoint?query', 'bce', 'PUT', '/v1/datapoint', [['query', null], ['database', db]], JSON.stringify(body)));
    } else {
      shaped = fromSql(await call('SQL /v1/row', 'bce', 'GET', '/v1/row', [['sql', $('statement').value], ['database', db]]));
    }
    state.last = shaped;
    state.runs += 1;
    draw(shaped.series);
    fillTable($('result'), shaped.columns, shaped.rows);
    $('status').textContent = `${shaped.series.length} series, ${shaped.rows.length} rows in ${Math.round(performance.now() - started)} ms`;
  } catch (e) {
    state.last = { error: e.message };
    state.runs += 1;
    showError(e);
  }
}

function setRefresh() {
  clearInterval(state.timer);
  const secs = Number($('refresh').value);
  if (secs > 0) state.timer = setInterval(runQuery, secs * 1000);
}

// ---------- series browser and cardinality ----------

function list(ul, items, onPick) {
  ul.innerHTML = '';
  for (const { label, count, value } of items) {
    const li = document.createElement('li');
    li.textContent = label;
    if (count !== undefined) {
      const c = document.createElement('span');
      c.className = 'count';
      c.textContent = count;
      li.appendChild(c);
    }
    if (onPick) {
      li.onclick = () => {
        for (const other of ul.children) other.classList.remove('chosen');
        li.classList.add('chosen');
        onPick(value ?? label);
      };
    }
    ul.appendChild(li);
  }
}

async function browse() {
  try {
    const answer = await call('Baidu /v1/database', 'bce', 'GET', '/v1/database');
    const names = ['default', ...(answer.databases || []).map((d) => d.databaseName).filter((n) => n !== 'default')];
    list($('databases'), names.map((n) => ({ label: n })), (n) => { $('database').value = n; browseMetrics(); });
    await browseMetrics();
  } catch (e) { showBrowseError(e); }
}

async function browseMetrics() {
  for (const id of ['metrics', 'fields', 'tagkeys', 'tagvalues']) $(id).innerHTML = '';
  try {
    const card = await call('/api/cardinality', 'basic', 'GET', '/api/cardinality', [['database', database()], ['top', '10000']]);
    list($('metrics'), card.metrics.map((m) => ({ label: m.metric, count: m.series })), browseMetric);
  } catch (e) { showBrowseError(e); }
}

async function browseMetric(metric) {
  try {
    const fields = await call('Baidu /v1/metric/field', 'bce', 'GET', `/v1/metric/${encodeURIComponent(metric)}/field`, [['database', database()]]);
    list($('fields'), Object.entries(fields.fields || {}).map(([f, t]) => ({ label: f, count: t.type })));
    const card = await call('/api/cardinality', 'basic', 'GET', '/api/cardinality', [['database', database()], ['metric', metric]]);
    list($('tagkeys'), card.tags.map((t) => ({ label: t.key, count: t.value_count, value: t })), (t) => {
      list($('tagvalues'), t.values.map((v) => ({ label: v.value, count: v.series })));
    });
  } catch (e) { showBrowseError(e); }
}

function showBrowseError(e) {
  $('tagvalues').innerHTML = `<li>${escapeHtml(e.message)}</li>`;
}

async function cardinality() {
  try {
    const card = await call('/api/cardinality', 'basic', 'GET', '/api/cardinality', [['database', database()], ['top', '20']]);
    $('card-total').textContent = `${card.series} series in ${card.metric_count} metrics`;
    fillTable($('card-metrics'), ['metric', 'series'], card.metrics.map((m) => [m.metric, m.series]));
    fillTable($('card-tags'), ['metric', 'tag key', 'values', 'series'], card.tag_keys.map((t) => [t.metric, t.key, t.values, t.series]));
  } catch (e) { $('card-total').textContent = e.message; }
}

// ---------- storage, queries, BlueKing ----------

async function storage() {
  const out = $('storage');
  try {
    const s = await call('/admin/storage', 'basic', 'GET', '/admin/storage');
    if (s.cluster) return clusterStorage(out, s);
    const rows = Object.entries(s.databases || {}).map(([name, d]) => [
      name, d.series, d.head_points, d.wal_segments, d.wal_bytes, d.blocks, d.flushed_blocks,
      d.block_bytes, d.points_written ? (d.block_bytes / d.points_written).toFixed(3) : '',
      d.work ? `${d.work.flushes} / ${d.work.compactions}` : '', d.wal_failure || d.flush_failure || '',
    ]);
    out.innerHTML = '<table class="data" id="storage-table"></table>';
    fillTable($('storage-table'), ['database', 'series', 'head points', 'WAL segments', 'WAL bytes', 'blocks', 'blocks not yet merged', 'block bytes', 'bytes/point written', 'flushes / compactions', 'failing'], rows);
    // Compaction tiers: a flush writes partition blocks, compaction merges
    // them into day, then week blocks.
    const levels = Object.entries(s.databases || {}).flatMap(([name, d]) =>
      (d.levels || []).map((l) => [name, l.level, l.blocks, l.bytes]));
    out.insertAdjacentHTML('beforeend', '<h3>Blocks per level</h3><table class="data" id="levels-table"></table>');
    fillTable($('levels-table'), ['database', 'level', 'blocks', 'bytes'], levels);
    if (s.object_store) out.insertAdjacentHTML('beforeend', `<p>Blocks in ${escapeHtml(s.object_store.location)}</p>`);
  } catch (e) { out.textContent = e.message; }
}

// A cluster node shows the cluster's manifest: blocks per database, the
// objects waiting for the compactor, and which node owns which shards.
function clusterStorage(out, s) {
  const time = (ms) => new Date(ms).toISOString();
  const rows = Object.entries(s.databases || {}).map(([name, d]) => [
    name, d.shards, d.blocks, d.block_bytes, time(d.min_ts), time(d.max_ts)]);
  out.innerHTML = '<table class="data" id="storage-table"></table>';
  fillTable($('storage-table'), ['database', 'shards', 'blocks', 'block bytes', 'from', 'to'], rows);
  out.insertAdjacentHTML('beforeend', `<p>${escapeHtml(s.retired_objects)} replaced objects wait for the compactor.</p>`
    + '<h3>Shard owners</h3><table class="data" id="owners-table"></table>');
  const owners = Object.entries(s.shard_owners || {}).map(([node, shards]) => [node, shards.length, shards.join(' ')]);
  fillTable($('owners-table'), ['node', 'shards', 'which'], owners);
}

async function queries() {
  try {
    const q = await call('/admin/queries', 'basic', 'GET', '/admin/queries');
    fillTable($('running'), ['id', 'api', 'path', 'running ms', 'statement'], q.running.map((r) => [r.id, r.api, r.path, r.elapsed_ms, r.statement]));
    fillTable($('slow'), ['at', 'api', 'path', 'status', 'ms', 'points scanned', 'statement'], q.slow.map((r) => [new Date(r.at_ms).toISOString(), r.api, r.path, r.status, r.elapsed_ms, r.scanned_points ?? '', r.statement ?? '']));
  } catch (e) { $('running').innerHTML = `<tr><td>${escapeHtml(e.message)}</td></tr>`; }
}

async function bkGroups() {
  const base = '/api/c/compapi/v2/monitor_v3/';
  try {
    const answer = await call('BlueKing metadata_query_time_series_group', 'bk', 'POST', base + 'metadata_query_time_series_group', [], '{}');
    const rows = [];
    for (const g of answer.data || []) {
      const m = await call('BlueKing metadata_get_time_series_metrics', 'bk', 'POST', base + 'metadata_get_time_series_metrics', [], JSON.stringify({ table_id: g.table_id }));
      const metrics = (m.data.metric_info_list || []).map((i) => i.field_name).join(', ');
      rows.push([g.time_series_group_id, g.time_series_group_name, g.bk_data_id, g.table_id, g.label, metrics]);
    }
    fillTable($('bk-groups'), ['id', 'name', 'data id', 'table id', 'label', 'metrics'], rows);
  } catch (e) { $('bk-groups').innerHTML = `<tr><td>${escapeHtml(e.message)}</td></tr>`; }
}

// ---------- wiring ----------

const TABS = { query: null, browse, cardinality, storage, queries, bk: bkGroups };

function showTab() {
  const name = (location.hash || '#query').slice(1);
  const tab = name in TABS ? name : 'query';
  for (const t of Object.keys(TABS)) $(`tab-${t}`).hidden = t !== tab;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
  if (TABS[tab]) TABS[tab]();
}

function init() {
  $('statement').value = EXAMPLES.opentsdb;
  $('lang').onchange = () => { $('statement').value = EXAMPLES[$('lang').value]; };
  $('range').onchange = () => { $('custom-range').hidden = $('range').value !== 'custom'; };
  $('refresh').onchange = setRefresh;
  $('run').onclick = runQuery;
  document.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); runQuery(); }
  });
  $('logout').onclick = () => { sessionStorage.removeItem('sundial-key'); state.key = null; showWho(); };
  window.addEventListener('hashchange', showTab);
  showWho();
  showTab();
}

init();
