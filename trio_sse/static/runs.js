/*
 * The dashboard's Runs view (SPEC §9): the runs the server's history remembers, newest first
 * (GET api/runs, a page at a time), each with a link to its tasks as CSV (api/runs/<run>.csv);
 * pick two and compare them per domain and per task (GET api/runs/<run> of each) — the same
 * comparison as `trio-sse runs compare A B`: A is the older run (then), B the newer (now).
 * Owns the #runs view and the switch between it and the live cards: location.hash "#runs"
 * (with "?offset=N" for a page, "&a=<run>&b=<run>" for a comparison, so a view can be
 * bookmarked or reloaded) shows it, anything else the live view (dashboard.js, untouched).
 *
 * Must not: insert any stored text as HTML — task ids, domains, model names come from logs:
 * everything goes through textContent or attributes; nor assume the history is on (a server
 * with --db none answers 404 with a sentence, which the view shows as it is).
 */
(function () {
  'use strict';

  var PAGE = 20; // runs per page
  var CHANGE_ORDER = { regressed: 0, fixed: 1, 'new': 2, missing: 3, same: 4 };

  var token = new URLSearchParams(location.search).get('token');
  var listSeq = 0; // a late answer to an older request is dropped
  var compareSeq = 0;
  var picked = []; // [{ref, rank}], at most two, the oldest pick first; rank: place in the list (0: newest)
  var shown = { offset: 0, a: null, b: null };

  function apiUrl(path) {
    var url = new URL(path, document.baseURI);
    if (token) url.searchParams.set('token', token);
    return url;
  }

  function view() {
    return document.getElementById('runs-view');
  }

  function field(name, root) {
    return (root || view()).querySelector('[data-field="' + name + '"]');
  }

  function num(value) {
    return typeof value === 'number' && isFinite(value) ? value : null;
  }

  function str(value) {
    return typeof value === 'string' && value !== '' ? value : null;
  }

  function cell(tr, text, className) {
    var td = document.createElement('td');
    if (className) td.className = className;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  function pct(passed, total) {
    return total ? (100 * passed / total).toFixed(1) + ' %' : '–';
  }

  function fmtAverage(x) {
    return num(x) === null ? 'N/A' : x.toFixed(2);
  }

  function fmtTime(text) {
    // To the second (the full value is the cell's title): the log's own times have no
    // zone; the server's first-seen time (a run whose log had no time yet) is UTC.
    return str(text) ? String(text).replace('T', ' ').replace(/(\.\d+)?([+-]\d\d:?\d\d|Z)?$/, '') : '—';
  }

  function refOf(run) {
    return run.target + ':' + run.run;
  }

  // GET a JSON API path; resolves to {ok, status, body}, never rejects (a network error is
  // status 0 with a sentence).
  function getJson(path) {
    return fetch(apiUrl(path).toString(), { cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          return { ok: response.ok, status: response.status, body: body };
        });
      })
      .catch(function (err) {
        return { ok: false, status: 0, body: { error: 'the server is unreachable (' + err + ')' } };
      });
  }

  function errorText(answer) {
    var b = answer.body;
    return b && typeof b.error === 'string' ? b.error : 'HTTP ' + answer.status;
  }

  // ------------------------------------------------------------------ the view switch

  function parseHash() {
    var m = /^#runs(?:\?(.*))?$/.exec(location.hash);
    if (!m) return null;
    var q = new URLSearchParams(m[1] || '');
    var offset = parseInt(q.get('offset') || '0', 10);
    return {
      offset: isFinite(offset) && offset > 0 ? offset - (offset % PAGE) : 0,
      a: q.get('a'),
      b: q.get('b')
    };
  }

  function hashFor(offset, a, b) {
    var q = new URLSearchParams();
    if (offset) q.set('offset', String(offset));
    if (a && b) {
      q.set('a', a);
      q.set('b', b);
    }
    var text = q.toString();
    return '#runs' + (text ? '?' + text : '');
  }

  function route() {
    var wanted = parseHash();
    document.body.dataset.view = wanted ? 'runs' : 'live';
    view().hidden = !wanted; // (hidden in the page itself: nothing shows before the stylesheet)
    document.querySelectorAll('.views a').forEach(function (a) {
      if (a.dataset.view === document.body.dataset.view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
    if (!wanted) return;
    shown.offset = wanted.offset;
    loadRuns();
    if (wanted.a && wanted.b) {
      if (wanted.a !== shown.a || wanted.b !== shown.b) compare(wanted.a, wanted.b);
    } else {
      shown.a = shown.b = null;
      field('compare').hidden = true;
    }
  }

  // ------------------------------------------------------------------ the list

  function setStatus(kind, text) {
    var el = field('runs-status');
    el.dataset.kind = kind;
    el.textContent = text;
    el.hidden = !text;
    view().dataset.state = kind;
  }

  function loadRuns() {
    listSeq += 1;
    var seq = listSeq;
    var offset = shown.offset;
    setStatus('loading', 'Loading the runs…');
    // One more than a page: whether there are older runs.
    getJson('api/runs?limit=' + (PAGE + 1) + '&offset=' + offset).then(function (answer) {
      if (seq !== listSeq) return;
      var box = field('runs-box');
      if (!answer.ok) {
        box.hidden = true;
        // 404 with a sentence: the history is off (--db none); anything else is an error.
        if (answer.status === 404) setStatus('off', errorText(answer));
        else setStatus('error', 'Could not load the runs: ' + errorText(answer));
        return;
      }
      var runs = answer.body && Array.isArray(answer.body.runs) ? answer.body.runs : [];
      runs = runs.filter(function (r) { return r && typeof r.target === 'string' && typeof r.run === 'string'; });
      if (!runs.length && offset === 0) {
        box.hidden = true;
        setStatus('empty', 'No runs stored yet: runs appear here as the server sees them.');
        return;
      }
      var older = runs.length > PAGE;
      renderRuns(runs.slice(0, PAGE));
      setStatus('loaded', '');
      box.hidden = false;
      field('page').textContent = runs.length
        ? 'runs ' + (offset + 1) + '–' + (offset + Math.min(PAGE, runs.length))
        : 'no runs here';
      button('newer').disabled = offset === 0;
      button('older').disabled = !older;
    });
  }

  function renderRuns(runs) {
    var body = field('runs');
    clear(body);
    runs.forEach(function (r, i) {
      var ref = refOf(r);
      var rank = shown.offset + i;
      var tr = document.createElement('tr');
      tr.dataset.run = ref;
      var pick = cell(tr, '', 'pick');
      var box = document.createElement('input');
      box.type = 'checkbox';
      box.setAttribute('aria-label', 'compare ' + ref);
      box.checked = picked.some(function (p) { return p.ref === ref; });
      tr.dataset.picked = box.checked ? 'true' : 'false';
      box.addEventListener('change', function () { onPick(ref, rank, box.checked); });
      pick.appendChild(box);
      cell(tr, r.target, 'target');
      cell(tr, r.run, 'run-id').title = ref;
      cell(tr, fmtTime(r.started), 'num').title = str(r.started) || '';
      var state = r.interrupted === null || r.interrupted === undefined ? 'running' : r.interrupted ? 'interrupted' : 'finished';
      var end = cell(tr, state === 'finished' ? fmtTime(r.finished) : state, 'num');
      end.dataset.state = state;
      if (state === 'finished') end.title = str(r.finished) || '';
      var tasks = num(r.tasks) === null ? 0 : r.tasks;
      var planned = num(r.total_tasks) !== null && r.total_tasks !== tasks ? ' / ' + r.total_tasks : '';
      cell(tr, tasks + planned, 'num');
      var passed = num(r.passed) === null ? 0 : r.passed;
      cell(tr, passed + ' (' + pct(passed, tasks) + ')', 'num');
      cell(tr, fmtAverage(r.average), 'num');
      var model = [str(r.model), str(r.agent)].filter(Boolean).join(' · ');
      cell(tr, model || '—', 'col-model');
      var csvCell = cell(tr, '', 'csv');
      var csv = document.createElement('a');
      csv.href = apiUrl('api/runs/' + encodeURIComponent(ref) + '.csv').toString();
      csv.textContent = 'CSV';
      csv.setAttribute('download', '');
      csv.rel = 'noopener';
      csvCell.appendChild(csv);
      body.appendChild(tr);
    });
  }

  function button(action) {
    return view().querySelector('[data-action="' + action + '"]');
  }

  function onPick(ref, rank, on) {
    picked = picked.filter(function (p) { return p.ref !== ref; });
    if (on) picked.push({ ref: ref, rank: rank });
    while (picked.length > 2) picked.shift(); // a third pick replaces the oldest one
    field('runs').querySelectorAll('tr').forEach(function (tr) {
      var is = picked.some(function (p) { return p.ref === tr.dataset.run; });
      tr.dataset.picked = is ? 'true' : 'false';
      tr.querySelector('input').checked = is;
    });
    button('compare').disabled = picked.length !== 2;
  }

  // ------------------------------------------------------------------ the comparison

  function startCompare() {
    if (picked.length !== 2) return;
    // A: the older run (then), B: the newer one (now) — in the server's order, newest first
    // (the runs' own start times may come from clocks that do not agree).
    var pair = picked.slice().sort(function (x, y) { return y.rank - x.rank; });
    location.hash = hashFor(shown.offset, pair[0].ref, pair[1].ref);
  }

  function compare(refA, refB) {
    compareSeq += 1;
    var seq = compareSeq;
    shown.a = refA;
    shown.b = refB;
    var box = field('compare');
    box.hidden = false;
    box.dataset.state = 'loading';
    field('compare-head').textContent = 'Loading ' + refA + ' and ' + refB + '…';
    field('compare-summary').textContent = '';
    clear(field('compare-domains').tBodies[0]);
    clear(field('compare-tasks').tBodies[0]);
    Promise.all([getJson('api/runs/' + encodeURIComponent(refA)), getJson('api/runs/' + encodeURIComponent(refB))])
      .then(function (answers) {
        if (seq !== compareSeq) return;
        var bad = answers.filter(function (x) { return !x.ok || !x.body || !Array.isArray(x.body.tasks); });
        if (bad.length) {
          box.dataset.state = 'failed';
          field('compare-head').textContent = 'Could not compare: ' + errorText(bad[0]);
          return;
        }
        renderCompare(answers[0].body, answers[1].body);
        box.dataset.state = 'loaded';
        box.scrollIntoView({ block: 'start' });
      });
  }

  // task_id -> its last result in the run (a retried task counts once, with its last result).
  function latest(tasks) {
    var out = new Map();
    tasks.forEach(function (t) {
      if (!t || typeof t.task_id !== 'string' || !t.task_id) return;
      out.delete(t.task_id);
      out.set(t.task_id, t);
    });
    return out;
  }

  function result(t) {
    if (!t) return '—';
    return (t.success === true ? '✓ ' : '✗ ') + (num(t.score) === null ? 'N/A' : t.score.toFixed(2));
  }

  function renderCompare(a, b) {
    var runA = a.run || {};
    var runB = b.run || {};
    var then = latest(a.tasks);
    var now = latest(b.tasks);
    field('compare-head').textContent =
      'A = ' + refOf(runA) + ' (then: ' + (runA.passed || 0) + ' / ' + (runA.tasks || 0) + ' passed, average ' + fmtAverage(runA.average) + ')' +
      ' · B = ' + refOf(runB) + ' (now: ' + (runB.passed || 0) + ' / ' + (runB.tasks || 0) + ' passed, average ' + fmtAverage(runB.average) + ')';

    // Per domain: [tasks A, passed A, tasks B, passed B].
    var domains = new Map();
    function add(t, i) {
      var d = str(t.domain) || '—';
      if (!domains.has(d)) domains.set(d, [0, 0, 0, 0]);
      var row = domains.get(d);
      row[i] += 1;
      if (t.success === true) row[i + 1] += 1;
    }
    then.forEach(function (t) { add(t, 0); });
    now.forEach(function (t) { add(t, 2); });
    var dBody = field('compare-domains').tBodies[0];
    Array.from(domains.keys()).sort().forEach(function (d) {
      var v = domains.get(d);
      var tr = document.createElement('tr');
      tr.dataset.domain = d;
      cell(tr, d, 'domain');
      cell(tr, String(v[0]), 'num');
      cell(tr, v[1] + ' (' + pct(v[1], v[0]) + ')', 'num');
      cell(tr, String(v[2]), 'num');
      cell(tr, v[3] + ' (' + pct(v[3], v[2]) + ')', 'num');
      var delta = v[0] && v[2] ? 100 * (v[3] / v[2] - v[1] / v[0]) : null;
      var dc = cell(tr, delta === null ? '–' : (delta > 0 ? '+' : '') + delta.toFixed(1), 'num delta');
      dc.dataset.sign = delta === null || Math.abs(delta) < 0.05 ? '0' : delta > 0 ? '+' : '-';
      dBody.appendChild(tr);
    });

    // Per task: the change of success (fixed, regressed, same), new in B, missing from B.
    var counts = { fixed: 0, regressed: 0, same: 0, 'new': 0, missing: 0 };
    var rows = [];
    var ids = new Set(Array.from(then.keys()).concat(Array.from(now.keys())));
    ids.forEach(function (id) {
      var x = then.get(id);
      var y = now.get(id);
      var change;
      if (!y) change = 'missing';
      else if (!x) change = 'new';
      else if ((x.success === true) === (y.success === true)) change = 'same';
      else change = y.success === true ? 'fixed' : 'regressed';
      counts[change] += 1;
      rows.push({ id: id, domain: str((y || x).domain) || '—', a: x, b: y, change: change });
    });
    rows.sort(function (p, q) {
      return CHANGE_ORDER[p.change] - CHANGE_ORDER[q.change] || (p.domain < q.domain ? -1 : p.domain > q.domain ? 1 : 0) ||
        (p.id < q.id ? -1 : p.id > q.id ? 1 : 0);
    });
    var tBody = field('compare-tasks').tBodies[0];
    rows.forEach(function (r) {
      var tr = document.createElement('tr');
      tr.dataset.task = r.id;
      tr.dataset.change = r.change;
      cell(tr, r.id, 'task');
      cell(tr, r.domain, 'domain');
      cell(tr, result(r.a), 'num');
      cell(tr, result(r.b), 'num');
      cell(tr, r.change, 'change');
      tBody.appendChild(tr);
    });
    var summary = field('compare-summary');
    summary.textContent = counts.fixed + ' fixed, ' + counts.regressed + ' regressed, ' + counts.same + ' same, ' +
      counts['new'] + ' new, ' + counts.missing + ' missing';
    Object.keys(counts).forEach(function (k) { summary.dataset[k] = String(counts[k]); });
  }

  // ------------------------------------------------------------------ wiring

  function start() {
    button('compare').addEventListener('click', startCompare);
    button('refresh').addEventListener('click', loadRuns);
    button('newer').addEventListener('click', function () {
      location.hash = hashFor(Math.max(0, shown.offset - PAGE), shown.a, shown.b);
    });
    button('older').addEventListener('click', function () {
      location.hash = hashFor(shown.offset + PAGE, shown.a, shown.b);
    });
    var only = field('changes-only');
    only.addEventListener('change', function () {
      field('compare-tasks').dataset.changesOnly = only.checked ? 'true' : 'false';
    });
    window.addEventListener('hashchange', route);
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
