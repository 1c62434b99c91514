/*
 * The live dashboard's logic (SPEC §6). Owns: one EventSource on api/benchmark-sse, the
 * connection indicator, and rendering each target's card from status / progress /
 * task_complete / run_complete / error events.
 *
 * Must not: insert any log-derived text as HTML (everything goes through textContent or
 * attributes; links only when http(s)), nor keep results per connection — rows are keyed by
 * task id, so a replay after a reconnect updates rows instead of adding them.
 *
 * Note: an app event named "error" shares its name with EventSource's own connection-error
 * event (whose e.data is undefined); the one "error" listener tells them apart.
 */
(function () {
  'use strict';

  var DURABLE = ['task_complete', 'run_complete'];
  var PHASES = ['downloading', 'extracting', 'configuring', 'building', 'booting', 'oobe', 'ready', 'unknown'];
  var DEFAULT_TARGET = 'default'; // the original endpoint's payloads have no "target"
  var MAX_ERRORS = 20;

  var page = new URLSearchParams(location.search);
  var token = page.get('token');
  var onlyTarget = page.get('target');
  var interval = page.get('interval') || '5';

  var targets = new Map(); // name -> target state
  var source = null; // the EventSource
  var lastEventId = ''; // newest durable id seen, for a reconnect we start ourselves
  var restartTimer = null;
  var restartDelay = 1000; // ms, doubles up to a minute while the server is unreachable

  // ------------------------------------------------------------------ helpers

  function apiUrl(path, extra) {
    var url = new URL(path, document.baseURI);
    if (token) url.searchParams.set('token', token);
    if (extra) {
      Object.keys(extra).forEach(function (k) {
        if (extra[k] !== null && extra[k] !== undefined && extra[k] !== '') url.searchParams.set(k, extra[k]);
      });
    }
    return url.toString();
  }

  function streamUrl(withId) {
    return apiUrl('api/benchmark-sse', {
      interval: interval,
      target: onlyTarget,
      lastEventId: withId ? lastEventId : null
    });
  }

  function field(node, name) {
    return node.querySelector('[data-field="' + name + '"]');
  }

  function setText(el, text) {
    el.textContent = text === null || text === undefined || text === '' ? '—' : String(text);
  }

  function fmtScore(score) {
    // 0 is a score (shown as 0.00), null is "no score" (the task raised).
    return typeof score === 'number' && isFinite(score) ? score.toFixed(2) : 'N/A';
  }

  function fmtDuration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return '—';
    seconds = Math.round(seconds);
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    function two(n) { return (n < 10 ? '0' : '') + n; }
    if (h) return h + 'h ' + two(m) + 'm';
    if (m) return m + 'm ' + two(s) + 's';
    return s + 's';
  }

  function pct(num, den) {
    return den ? (100 * num / den) : null;
  }

  function safeHttpUrl(text) {
    // A VNC link from the server: only http(s), never javascript: or data:.
    try {
      var url = new URL(String(text), document.baseURI);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.toString() : null;
    } catch (err) {
      return null;
    }
  }

  // The server's ids are "<target>:<run>-<n>" or, for a run of several worker files,
  // "<target>:<run>-<lane>.<n>_…" (a multi-target stream joins one per target
  // with ","). They are opaque to clients; we only use them, when they parse, to know which
  // run a result belongs to before the (coalesced) progress event says a new run started.
  function runFromId(id, target) {
    if (!id) return null;
    var parts = String(id).split(',');
    for (var i = 0; i < parts.length; i++) {
      var m = /^(.+):([0-9a-f]+)-([0-9a-f._]+)$/.exec(parts[i].trim());
      if (m && m[1] === target) return m[2];
    }
    return null;
  }

  // ------------------------------------------------------------------ connection indicator

  var CONNECTION_TEXT = {
    connecting: 'connecting…',
    live: 'live',
    reconnecting: 'reconnecting…',
    stopped: 'stopped',
    polling: 'polling'
  };

  function setConnection(state, detail) {
    var el = document.getElementById('connection');
    el.dataset.state = state;
    el.textContent = CONNECTION_TEXT[state] || state;
    var d = document.getElementById('connection-detail');
    d.hidden = !detail;
    d.textContent = detail || '';
  }

  function reportError(target, message) {
    var panel = document.getElementById('errors-panel');
    var list = document.getElementById('errors');
    var li = document.createElement('li');
    var time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    li.appendChild(time);
    li.appendChild(document.createTextNode(' ' + (target ? '[' + target + '] ' : '') + message));
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_ERRORS) list.removeChild(list.lastChild);
    panel.hidden = false;
  }

  // ------------------------------------------------------------------ target cards

  function targetState(name) {
    var st = targets.get(name);
    if (st) return st;
    var node = document.getElementById('target-template').content.firstElementChild.cloneNode(true);
    node.dataset.target = name;
    field(node, 'name').textContent = name;
    var main = document.getElementById('targets');
    // Cards in name order, whatever order the targets first speak in.
    var before = null;
    targets.forEach(function (other) {
      if (other.name > name && (before === null || other.name < before.dataset.target)) before = other.node;
    });
    main.insertBefore(node, before);
    document.getElementById('empty').hidden = true;
    st = {
      name: name,
      node: node,
      run: null, // current run id (progress.run)
      pastRuns: new Set(), // runs we left: a late event of one must not wipe the table
      rows: new Map(), // task_id -> {tr, run, result}
      progress: null,
      complete: null,
      observed: null // {at: ms, completed: n} when this page first saw the run
    };
    targets.set(name, st);
    return st;
  }

  function startRun(st, run) {
    if (st.run !== null) st.pastRuns.add(st.run);
    st.run = run;
    st.complete = null;
    st.observed = null;
    st.rows.forEach(function (row, taskId) {
      if (row.run !== null && row.run !== run) {
        row.tr.remove();
        st.rows.delete(taskId);
      } else {
        row.run = run;
      }
    });
    renderRunEnd(st);
    renderScores(st);
  }

  // Returns false when the event belongs to a run this page has already left.
  function followRun(st, run) {
    if (!run || run === st.run) return true;
    if (st.pastRuns.has(run)) return false;
    startRun(st, run);
    return true;
  }

  function onStatus(data) {
    var st = targetState(data.target || DEFAULT_TARGET);
    var node = st.node;
    var phase = field(node, 'phase');
    var known = PHASES.indexOf(data.phase) >= 0 ? data.phase : 'unknown';
    phase.dataset.phase = data.connected ? known : 'offline';
    phase.textContent = data.connected ? String(data.phase || 'unknown') : 'offline';
    var waa = field(node, 'waa');
    waa.dataset.ready = data.waa_ready ? 'true' : 'false';
    var probeStatus = data.probe && data.probe.status;
    waa.textContent = data.waa_ready ? 'WAA ready' : 'WAA not ready' + (probeStatus && probeStatus !== 'unknown' ? ' (' + probeStatus + ')' : '');
    var vnc = field(node, 'vnc');
    var href = data.probe && data.probe.vnc_url ? safeHttpUrl(data.probe.vnc_url) : null;
    if (href) {
      vnc.href = href;
      vnc.hidden = false;
    } else {
      vnc.removeAttribute('href');
      vnc.hidden = true;
    }
    node.dataset.connected = data.connected ? 'true' : 'false';
  }

  function onProgress(data) {
    var st = targetState(data.target || DEFAULT_TARGET);
    if (!followRun(st, data.run || null)) return;
    st.progress = data;
    if (!st.observed) st.observed = { at: Date.now(), completed: data.tasks_completed || 0 };
    renderProgress(st);
    renderTimes(st);
  }

  // On (re)connect the server replays results *before* the first progress: render the
  // counter from the results alone until progress arrives.
  var NO_PROGRESS = { tasks_completed: 0, total_tasks: null, current_task: null, current_domain: null,
                      current_step: null, running: null, finished: false };

  function renderProgress(st) {
    var p = st.progress || NO_PROGRESS;
    var node = st.node;
    var c = st.complete;
    // task_complete and run_complete are sent at once, progress at most once per interval:
    // until progress catches up, the results already shown speak for the counter.
    var done = Math.max(p.tasks_completed || 0, c ? c.tasks_completed : 0, st.rows.size);
    var total = typeof p.total_tasks === 'number' ? p.total_tasks : (c && typeof c.total_tasks === 'number' ? c.total_tasks : null);
    var percent = total ? Math.min(100, pct(done, total)) : null;
    field(node, 'bar').style.width = (percent === null ? 0 : percent).toFixed(1) + '%';
    var bar = field(node, 'progress');
    bar.setAttribute('aria-valuenow', String(done));
    if (total !== null) bar.setAttribute('aria-valuemax', String(total));
    else bar.removeAttribute('aria-valuemax');
    field(node, 'counter').textContent =
      done + ' / ' + (total === null ? '?' : total) + ' tasks' + (percent === null ? '' : ' · ' + percent.toFixed(0) + '%');
    node.dataset.completed = String(done);
    node.dataset.total = total === null ? '' : String(total);
    var over = p.finished || c;
    // A current task that already has a result row is stale progress: between tasks.
    var stale = !over && p.current_task !== null && st.rows.has(p.current_task);
    setText(field(node, 'current-task'), over ? 'finished' : stale ? null : p.current_task);
    setText(field(node, 'current-domain'), over || stale ? null : p.current_domain);
    setText(field(node, 'current-step'), over || stale ? null : p.current_step);
    var running = field(node, 'running');
    if (p.running === true || p.running === false) {
      running.hidden = false;
      running.dataset.running = String(p.running);
      running.textContent = p.running ? 'benchmark running' : 'benchmark not running';
    } else {
      running.hidden = true;
    }
  }

  // Elapsed: since the run started when the server says so (progress.started_at, seconds
  // since the epoch or an ISO date), else since this page first saw the run ("watching").
  // ETA: the pace so far over the tasks still to do.
  function renderTimes(st) {
    var p = st.progress;
    var node = st.node;
    if (!p || !st.observed) return;
    var now = Date.now();
    var started = null;
    if (typeof p.started_at === 'number') started = p.started_at * 1000;
    else if (typeof p.started_at === 'string' && !isNaN(Date.parse(p.started_at))) started = Date.parse(p.started_at);
    var done = p.tasks_completed || 0;
    var since, doneSince;
    if (started !== null) {
      since = started;
      doneSince = done;
      field(node, 'elapsed-label').textContent = 'Elapsed';
    } else {
      since = st.observed.at;
      doneSince = done - st.observed.completed;
      field(node, 'elapsed-label').textContent = 'Watching for';
    }
    var elapsed = (now - since) / 1000;
    var finished = p.finished || st.complete;
    // Time spent watching a run that is over says nothing: shown only while it runs.
    setText(field(node, 'elapsed'), started === null && finished ? null : fmtDuration(elapsed));
    var eta = field(node, 'eta');
    var total = p.total_tasks;
    if (finished) {
      eta.textContent = 'done';
    } else if (typeof total === 'number' && doneSince > 0 && elapsed > 0 && total >= done) {
      eta.textContent = fmtDuration((total - done) * elapsed / doneSince);
    } else {
      eta.textContent = '—';
    }
  }

  function renderScores(st) {
    var count = 0;
    var passed = 0;
    var sum = 0;
    var scored = 0;
    st.rows.forEach(function (row) {
      count += 1;
      if (row.result.success) passed += 1;
      // WAA's own "Average score": over the tasks that produced a Result; one that raised
      // has none and is left out (the server's figure is the same, live and at the end).
      if (typeof row.result.score === 'number') { sum += row.result.score; scored += 1; }
    });
    var node = st.node;
    setText(field(node, 'pass-rate'), count ? passed + ' / ' + count + ' (' + pct(passed, count).toFixed(1) + '%)' : null);
    // At the run's end the server's figure (the log's own "Average score") is the word.
    var average = st.complete && typeof st.complete.average_score === 'number' ? st.complete.average_score : (scored ? sum / scored : null);
    setText(field(node, 'avg-score'), average === null ? null : average.toFixed(2));
    node.dataset.passed = String(passed);
    node.dataset.results = String(count);
  }

  function renderRunEnd(st) {
    var el = field(st.node, 'run-end');
    var c = st.complete;
    st.node.dataset.finished = c ? 'true' : 'false';
    if (!c) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    var rate = c.tasks_completed ? ' (' + pct(c.tasks_passed, c.tasks_completed).toFixed(1) + '%)' : '';
    el.textContent = 'Run complete: ' + c.tasks_passed + ' / ' + c.tasks_completed + ' passed' + rate +
      (typeof c.average_score === 'number' ? ', average score ' + c.average_score.toFixed(2) : '') +
      (typeof c.total_tasks === 'number' && c.total_tasks !== c.tasks_completed ? ' — ' + c.total_tasks + ' tasks were planned' : '');
    el.hidden = false;
  }

  function cell(tr, text, className) {
    var td = document.createElement('td');
    if (className) td.className = className;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function fillRow(tr, r) {
    while (tr.firstChild) tr.removeChild(tr.firstChild);
    cell(tr, String(r.task_id), 'col-task');
    cell(tr, r.domain ? String(r.domain) : '—', 'col-domain');
    var ok = cell(tr, r.success ? '✓' : '✗', 'col-result ' + (r.success ? 'pass' : 'fail'));
    ok.title = r.success ? 'passed' : 'failed';
    cell(tr, fmtScore(r.score), 'col-score');
    var err = cell(tr, r.error ? String(r.error) : '', 'col-error');
    if (r.error) err.title = String(r.error);
    tr.dataset.taskId = String(r.task_id);
    tr.dataset.success = r.success ? 'true' : 'false';
  }

  function onTaskComplete(data, id) {
    if (typeof data.task_id !== 'string') return;
    var st = targetState(data.target || DEFAULT_TARGET);
    var run = runFromId(id, st.name);
    if (!followRun(st, run)) return;
    var row = st.rows.get(data.task_id);
    if (row) {
      fillRow(row.tr, data); // a replayed result: update in place, never a second row
      row.result = data;
    } else {
      var tr = document.createElement('tr');
      fillRow(tr, data);
      var body = field(st.node, 'results');
      body.insertBefore(tr, body.firstChild); // newest first
      st.rows.set(data.task_id, { tr: tr, run: st.run, result: data });
    }
    renderScores(st);
    renderProgress(st);
  }

  function onRunComplete(data, id) {
    var st = targetState(data.target || DEFAULT_TARGET);
    if (!followRun(st, runFromId(id, st.name))) return;
    st.complete = data;
    renderRunEnd(st);
    renderScores(st);
    if (st.progress) {
      renderProgress(st);
      renderTimes(st);
    }
  }

  function onAppError(data) {
    var target = data.target || null;
    var message = typeof data.message === 'string' ? data.message : JSON.stringify(data);
    if (target) {
      var el = field(targetState(target).node, 'error');
      el.textContent = 'Last error (' + new Date().toLocaleTimeString() + '): ' + message;
      el.hidden = false;
    }
    reportError(target, message);
  }

  var HANDLERS = {
    status: onStatus,
    progress: onProgress,
    task_complete: onTaskComplete,
    run_complete: onRunComplete,
    error: onAppError
  };

  // One place where wire data enters: bad data is reported on the page, never thrown.
  function dispatch(type, e) {
    var data;
    try {
      data = JSON.parse(e.data);
    } catch (err) {
      reportError(null, 'unreadable ' + type + ' event from the server');
      return;
    }
    if (data === null || typeof data !== 'object') return;
    if (DURABLE.indexOf(type) >= 0 && e.lastEventId) lastEventId = e.lastEventId;
    try {
      HANDLERS[type](data, e.lastEventId || null);
    } catch (err) {
      reportError(data.target || null, 'could not show a ' + type + ' event: ' + err);
    }
  }

  // ------------------------------------------------------------------ the stream

  function connect(withId) {
    clearTimeout(restartTimer);
    restartTimer = null;
    setConnection('connecting');
    var es = new EventSource(streamUrl(withId));
    source = es;
    es.onopen = function () {
      restartDelay = 1000;
      setConnection('live');
    };
    ['status', 'progress', 'task_complete', 'run_complete'].forEach(function (type) {
      es.addEventListener(type, function (e) { dispatch(type, e); });
    });
    // Both the app's "error" events and EventSource's own connection errors arrive here.
    es.addEventListener('error', function (e) {
      if (typeof e.data === 'string') {
        dispatch('error', e);
        return;
      }
      if (es !== source) return;
      if (es.readyState === EventSource.CONNECTING) {
        setConnection('reconnecting'); // the browser retries by itself, with Last-Event-ID
      } else if (es.readyState === EventSource.CLOSED) {
        diagnose(es);
      }
    });
  }

  // The browser gave up (an HTTP error or a response that is not a stream). Ask the same URL
  // with fetch to learn why: a 4xx is final (shown, no retry); anything else retries later.
  function diagnose(es) {
    es.close();
    setConnection('reconnecting');
    var controller = new AbortController();
    fetch(streamUrl(true), { headers: { Accept: 'text/event-stream' }, signal: controller.signal, cache: 'no-store' })
      .then(function (response) {
        if (response.ok) {
          controller.abort();
          scheduleRestart(0);
          return null;
        }
        var retryAfter = parseInt(response.headers.get('Retry-After') || '', 10);
        return response.json().catch(function () { return {}; }).then(function (body) {
          var message = body && typeof body.error === 'string' ? body.error : 'HTTP ' + response.status;
          if (response.status >= 400 && response.status < 500 && response.status !== 429) {
            setConnection('stopped', message);
          } else {
            setConnection('reconnecting', message);
            scheduleRestart(isFinite(retryAfter) ? retryAfter * 1000 : restartDelay);
          }
        });
      })
      .catch(function () {
        setConnection('reconnecting', 'the server is unreachable');
        scheduleRestart(restartDelay);
      });
  }

  function scheduleRestart(delay) {
    clearTimeout(restartTimer);
    restartTimer = setTimeout(function () { connect(true); }, delay);
    restartDelay = Math.min(60000, restartDelay * 2);
  }

  // ------------------------------------------------------------------ polling fallback
  // For a browser without EventSource (the seed documents' fallback): the snapshot every 5 s.

  function applySnapshot(body) {
    var all = body && body.targets ? body.targets : {};
    Object.keys(all).forEach(function (name) {
      if (onlyTarget && name !== onlyTarget) return;
      var t = all[name] || {};
      if (t.status) onStatus(Object.assign({ target: name }, t.status));
      if (t.progress) onProgress(Object.assign({ target: name }, t.progress));
      (t.results || []).forEach(function (r) { onTaskComplete(Object.assign({ target: name }, r), null); });
      if (t.run && t.run.complete) onRunComplete(Object.assign({ target: name }, t.run.complete), null);
    });
  }

  function poll() {
    fetch(apiUrl('api/benchmark'), { cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (body) { applySnapshot(body); setConnection('polling'); })
      .catch(function () { setConnection('reconnecting', 'the server is unreachable'); });
  }

  function start() {
    setInterval(function () { targets.forEach(renderTimes); }, 1000);
    if (typeof EventSource === 'undefined') {
      poll();
      setInterval(poll, 5000);
      return;
    }
    connect(false);
    window.addEventListener('pagehide', function () { if (source) source.close(); });
    // Back from the back/forward cache: the stream was closed on pagehide; resume it.
    window.addEventListener('pageshow', function (e) { if (e.persisted) connect(true); });
  }

  // Loaded by index.html's bootstrap, possibly before the body is parsed.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
