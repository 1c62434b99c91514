/*
 * The live dashboard's logic (SPEC §6, §8, §9). Owns: one EventSource on api/benchmark-sse, the
 * connection indicator (and greying every card's values as "last known" while it is down),
 * rendering each target's card from status / progress / step / task_complete / run_complete /
 * error events — the workers' current task, instruction, action and latest screenshot, the
 * stall banner, the wall time and ETA on the log's own clock, the forecast of the final
 * success rate, the per-domain table, the results table with its failures-only filter, export
 * links and the changes against a baseline run — an overview row per target when there are
 * several, and the trajectory dialog of one task (GET api/tasks/<id>). The Runs view (past
 * runs, compared) is runs.js.
 *
 * Must not: insert any log-derived text as HTML (everything goes through textContent or
 * attributes; links only when http(s), images only from this page's own origin), nor keep
 * results per connection — rows are keyed by task id, so a replay after a reconnect updates
 * rows instead of adding them. Nor compare the log's times (ISO-8601 without a zone, the
 * benchmark machine's clock) with this browser's clock: only with each other.
 *
 * Note: an app event named "error" shares its name with EventSource's own connection-error
 * event (whose e.data is undefined); the one "error" listener tells them apart.
 */
(function () {
  'use strict';

  var DURABLE = ['task_complete', 'run_complete'];
  var PHASES = ['downloading', 'extracting', 'configuring', 'building', 'booting', 'oobe', 'ready', 'unknown'];
  var FAILURE_TEXT = { agent: 'agent', infra: 'infra', evaluator: 'evaluator', max_steps: 'max steps' };
  var DEFAULT_TARGET = 'default'; // the original endpoint's payloads have no "target"
  var MAX_ERRORS = 20;
  var CHANGE_TEXT = { regressed: 'regressed', fixed: 'fixed', 'new': 'new', same: '' };

  var page = new URLSearchParams(location.search);
  var token = page.get('token');
  var onlyTarget = page.get('target');
  var interval = page.get('interval') || '5';

  var targets = new Map(); // name -> target state
  var source = null; // the EventSource
  var lastEventId = ''; // newest durable id seen, for a reconnect we start ourselves
  var restartTimer = null;
  var restartDelay = 1000; // ms, doubles up to a minute while the server is unreachable
  // Whether this connection's replay is over (the server sends every replayed result before
  // the first status/progress): only events after it tell what the log's clock says *now*.
  var replayDone = false;
  var connectionSeq = 0; // counts connections (and polls): news is compared within one only

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

  function taskUrl(target, taskId) {
    return apiUrl('api/tasks/' + encodeURIComponent(taskId), { target: target === DEFAULT_TARGET ? null : target });
  }

  // A screenshot named by the server: a url (SPEC §2.2 `step.screenshot`, e.g.
  // /api/tasks/<id>/files/<name>?target=…) or a bare file name of the task's traj.jsonl.
  // Only this page's own origin, with the page's token; anything else is not shown.
  function screenshotUrl(target, taskId, value) {
    if (typeof value !== 'string' || !value) return null;
    var url;
    try {
      if (!/[/?#:\\]/.test(value)) {
        url = new URL('api/tasks/' + encodeURIComponent(taskId) + '/files/' + encodeURIComponent(value), document.baseURI);
        if (target !== DEFAULT_TARGET) url.searchParams.set('target', target);
      } else if (value.indexOf('/api/') === 0) {
        url = new URL(value.slice(1), document.baseURI); // relative to the page: works behind a path prefix
      } else {
        url = new URL(value, document.baseURI);
      }
    } catch (err) {
      return null;
    }
    if (url.origin !== location.origin) return null;
    if (token && !url.searchParams.has('token')) url.searchParams.set('token', token);
    return url.toString();
  }

  function field(node, name) {
    return node.querySelector('[data-field="' + name + '"]');
  }

  function setText(el, text) {
    el.textContent = text === null || text === undefined || text === '' ? '—' : String(text);
  }

  function str(value) {
    return typeof value === 'string' && value !== '' ? value : null;
  }

  function num(value) {
    return typeof value === 'number' && isFinite(value) ? value : null;
  }

  function fmtScore(score) {
    // 0 is a score (shown as 0.00), null is "no score" (the task raised).
    return typeof score === 'number' && isFinite(score) ? score.toFixed(2) : 'N/A';
  }

  // A result against the baseline run (SPEC §9): "regressed (was ✓ 1.00)"; null for none.
  function changeDescription(r) {
    if (!r || typeof r.change !== 'string' || !r.change) return null;
    var word = Object.prototype.hasOwnProperty.call(CHANGE_TEXT, r.change) ? r.change : String(r.change);
    var b = r.baseline && typeof r.baseline === 'object' ? r.baseline : null;
    return word + (b ? ' (was ' + (b.success ? '✓ ' : '✗ ') + fmtScore(b.score) + ')' : ' (not in the baseline run)');
  }

  function fmtDuration(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds) || seconds < 0) return '—';
    seconds = Math.round(seconds);
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    function two(n) { return (n < 10 ? '0' : '') + n; }
    if (h) return h + 'h ' + two(m) + 'm';
    if (m) return m + 'm ' + two(s) + 's';
    return s + 's';
  }

  function fmtStalled(seconds) {
    if (seconds < 90) return Math.round(seconds) + ' s';
    var minutes = Math.round(seconds / 60);
    if (minutes < 90) return minutes + ' min';
    return Math.floor(minutes / 60) + ' h ' + (minutes % 60) + ' min';
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

  // The log's times: ISO-8601 as the benchmark machine wrote them, without a zone. Read as
  // if they were UTC: only differences between two of them are ever used, never "now".
  function logTime(text) {
    if (typeof text !== 'string') return null;
    var m = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,6}))?$/.exec(text.trim());
    if (!m) {
      var parsed = Date.parse(text); // one with a zone: comparable all the same
      return isNaN(parsed) ? null : parsed;
    }
    var ms = m[7] ? Math.round(Number('0.' + m[7]) * 1000) : 0;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], ms);
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
    // What the cards show is only as fresh as the connection: while it is down, their
    // badges are the last known values, greyed (never a green "ready" from an hour ago).
    document.body.dataset.stale = state === 'live' || state === 'polling' ? 'false' : 'true';
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

  function newClock() {
    // latest: the newest log time seen (ms, log clock), seenAt: when (browser ms);
    // offset: browser minus log clock, the smallest seen on a live event (the one that
    // travelled fastest); lastFinish: the newest finished_at.
    return { latest: null, seenAt: null, offset: null, lastFinish: null };
  }

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
      progressAt: 0, // browser ms when progress arrived (the stall counter goes on from there)
      complete: null,
      observed: null, // {at: ms, completed: n} when this page first saw the run
      workers: new Map(), // worker name -> worker state (its panel, what it does now)
      clock: newClock(),
      logTime: null, // progress.log_time last seen (a new value: the log just moved)
      logTimeSeq: -1, // the connection it was seen on
      overview: null // its row in the overview table
    };
    var box = field(node, 'failures-only');
    box.addEventListener('change', function () {
      field(node, 'results-table').dataset.failuresOnly = box.checked ? 'true' : 'false';
    });
    field(node, 'csv').href = apiUrl('api/tasks', { format: 'csv', target: name === DEFAULT_TARGET ? null : name });
    field(node, 'json').href = apiUrl('api/tasks', { format: 'json', target: name === DEFAULT_TARGET ? null : name });
    field(node, 'results').addEventListener('click', function (e) {
      var tr = e.target.closest('tr');
      if (tr && tr.dataset.taskId !== undefined) openTrajectory(st, tr.dataset.taskId, tr.querySelector('.task-link'));
    });
    targets.set(name, st);
    renderOverview();
    return st;
  }

  function startRun(st, run) {
    if (st.run !== null) st.pastRuns.add(st.run);
    st.run = run;
    st.complete = null;
    st.observed = null;
    st.clock = newClock();
    st.logTime = null;
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

  // live: whether this time was written just now (default: any event after the replay).
  function observeLogTime(st, text, isFinish, live) {
    var t = logTime(text);
    if (t === null) return;
    if (live === undefined) live = replayDone;
    var c = st.clock;
    var now = Date.now();
    if (c.latest === null || t > c.latest) {
      c.latest = t;
      c.seenAt = now;
    }
    if (isFinish && (c.lastFinish === null || t > c.lastFinish)) c.lastFinish = t;
    if (live) {
      var offset = now - t;
      if (c.offset === null || offset < c.offset) c.offset = offset;
    }
  }

  // The log clock's "now": exact once a live event carried a log time; before that, a lower
  // bound (the newest time replayed, plus the time since it was replayed).
  function logNow(st) {
    var c = st.clock;
    if (c.latest === null) return null;
    var bound = c.latest + (Date.now() - c.seenAt);
    return c.offset === null ? bound : Math.max(c.latest, Date.now() - c.offset);
  }

  function onStatus(data) {
    replayDone = true;
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
    renderOverview();
  }

  function onProgress(data) {
    replayDone = true;
    var st = targetState(data.target || DEFAULT_TARGET);
    if (!followRun(st, data.run || null)) return;
    var previous = st.progress;
    st.progress = data;
    st.progressAt = Date.now();
    if (!st.observed) st.observed = { at: Date.now(), completed: data.tasks_completed || 0 };
    // progress.log_time: the newest record's own time. A value that changed since this
    // connection's previous progress is news (the log moved at most one interval ago); the
    // first one of a connection may be old (a quiet log): a lower bound only.
    var logTimeNow = str(data.log_time);
    var moved = previous !== null && st.logTimeSeq === connectionSeq && st.logTime !== null && logTimeNow !== st.logTime;
    st.logTime = logTimeNow;
    st.logTimeSeq = connectionSeq;
    observeLogTime(st, logTimeNow, false, moved);
    renderWorkers(st);
    renderProgress(st);
    renderTimes(st);
  }

  // On (re)connect the server replays results *before* the first progress: render the
  // counter from the results alone until progress arrives.
  var NO_PROGRESS = { tasks_completed: 0, total_tasks: null, current_task: null, current_domain: null,
                      current_step: null, running: null, finished: false };

  function isOver(st) {
    return Boolean((st.progress && st.progress.finished) || st.complete);
  }

  function doneCount(st) {
    var p = st.progress || NO_PROGRESS;
    var c = st.complete;
    // task_complete and run_complete are sent at once, progress at most once per interval:
    // until progress catches up, the results already shown speak for the counter.
    return Math.max(p.tasks_completed || 0, c ? c.tasks_completed : 0, st.rows.size);
  }

  function totalCount(st) {
    var p = st.progress || NO_PROGRESS;
    var c = st.complete;
    return typeof p.total_tasks === 'number' ? p.total_tasks : (c && typeof c.total_tasks === 'number' ? c.total_tasks : null);
  }

  function renderProgress(st) {
    var p = st.progress || NO_PROGRESS;
    var node = st.node;
    var done = doneCount(st);
    var total = totalCount(st);
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
    var over = isOver(st);
    // A current task that already has a result row is stale progress: between tasks.
    var stale = !over && p.current_task !== null && st.rows.has(p.current_task);
    var step = num(p.current_step);
    if (!over && !stale && p.current_task) {
      st.workers.forEach(function (w) {
        // a step event may have moved it on since this (coalesced) progress
        if (w.task === p.current_task && w.step !== null && (step === null || w.step > step)) step = w.step;
      });
    }
    setText(field(node, 'current-task'), over ? 'finished' : stale ? 'next task starting…' : p.current_task);
    setText(field(node, 'current-domain'), over || stale ? null : p.current_domain);
    setText(field(node, 'current-step'), over || stale || step === null ? null : step + (num(p.max_steps) ? ' / ' + p.max_steps : ''));
    var running = field(node, 'running');
    if (p.running === true || p.running === false) {
      running.hidden = false;
      running.dataset.running = String(p.running);
      running.textContent = p.running ? 'benchmark running' : 'benchmark not running';
    } else {
      running.hidden = true;
    }
    var threshold = num(p.success_threshold);
    field(node, 'threshold').textContent = threshold === null ? '' : 'pass: score ≥ ' + threshold.toFixed(2);
    renderForecast(st);
    renderStalled(st);
    renderOverview();
  }

  // progress.forecast (SPEC §9): the final success rate expected, with its 90 % interval —
  // while the run goes (at its end the rate itself is known).
  function renderForecast(st) {
    var f = st.progress && !isOver(st) ? st.progress.forecast : null;
    var box = field(st.node, 'forecast-box');
    var rate = f && typeof f === 'object' ? num(f.success_rate) : null;
    var low = f && typeof f === 'object' ? num(f.low) : null;
    var high = f && typeof f === 'object' ? num(f.high) : null;
    if (rate === null || low === null || high === null) {
      box.hidden = true;
      field(st.node, 'forecast').textContent = '';
      return;
    }
    function percent(x) { return Math.round(100 * Math.min(1, Math.max(0, x))); }
    field(st.node, 'forecast').textContent = 'expected ' + percent(rate) + ' % (' + percent(low) + '–' + percent(high) + ' %)';
    box.hidden = false;
  }

  function renderStalled(st) {
    var el = field(st.node, 'stalled');
    var p = st.progress;
    var stalled = p && !isOver(st) ? num(p.stalled) : null;
    if (stalled === null) {
      el.hidden = true;
      el.textContent = '';
      st.node.dataset.stalled = 'false';
      return;
    }
    // The server counts at each progress; between two of them the stall goes on.
    var seconds = stalled + Math.max(0, (Date.now() - st.progressAt) / 1000);
    el.textContent = 'Stalled for ' + fmtStalled(seconds) + ': nothing new in the log or the results.';
    el.hidden = false;
    st.node.dataset.stalled = 'true';
  }

  // ------------------------------------------------------------------ workers: what each one does now
  // Each worker's panel shows its current task, step, the task's instruction, the latest action
  // and the latest screenshot. progress.workers[] carries each worker's task, step, instruction
  // and action (an older server: the top-level fields, for the worker that moved last only);
  // `step` events come at once, between two (coalesced) progress events, with the action and
  // the screenshot. Whichever names the newer step wins; a new task clears what was known.

  function workerEntries(st) {
    var p = st.progress;
    if (!p || isOver(st)) return [];
    if (Array.isArray(p.workers) && p.workers.length) {
      return p.workers.filter(function (w) { return w && typeof w.worker === 'string'; });
    }
    // An older server (or the simple format): one worker, the top-level fields.
    return [{ worker: '', current_task: p.current_task, current_domain: p.current_domain,
              current_step: p.current_step, evaluating: false }];
  }

  function workerState(st, name) {
    var w = st.workers.get(name);
    if (w) return w;
    var node = document.getElementById('worker-template').content.firstElementChild.cloneNode(true);
    node.dataset.worker = name;
    field(st.node, 'workers').appendChild(node);
    field(node, 'w-task').addEventListener('click', function () {
      if (w.task) openTrajectory(st, w.task, field(node, 'w-task'));
    });
    w = { name: name, node: node, stepTask: null };
    setTask(w, null);
    st.workers.set(name, w);
    return w;
  }

  // A worker moves to `task` (null: between tasks): what was known of the last one goes.
  function setTask(w, task) {
    w.task = task;
    w.domain = null;
    w.step = null;
    w.evaluating = false;
    w.instruction = null;
    w.action = null;
    w.actionStep = -1;
    w.shot = null; // the screenshot's URL
    w.shotStep = -1;
  }

  // What is known of the worker's task at `step`: kept when it is not older than what is shown.
  function learnStep(w, step, action, shot) {
    var n = step === null ? -1 : step;
    if (step !== null && (w.step === null || step > w.step)) w.step = step;
    if (action && n >= w.actionStep) {
      w.action = action;
      w.actionStep = n;
    }
    if (shot && n >= w.shotStep) {
      w.shot = shot;
      w.shotStep = n;
    }
  }

  function renderWorkers(st) {
    var entries = workerEntries(st);
    var seen = new Set();
    var p = st.progress || NO_PROGRESS;
    entries.forEach(function (e) {
      var w = workerState(st, e.worker);
      seen.add(e.worker);
      var task = str(e.current_task);
      if (task && st.rows.has(task)) task = null; // its result is in: between tasks
      // A step event may already have moved this worker to a newer task than the (coalesced)
      // progress knows: keep that one until progress catches up (or its result comes).
      var ahead = w.stepTask !== null && w.stepTask !== task && !st.rows.has(w.stepTask);
      if (!ahead) {
        if (w.task !== task) setTask(w, task);
        w.stepTask = null;
        if (task) {
          var top = task === str(p.current_task); // (an older server's fields are the top-level ones)
          w.domain = str(e.current_domain) || (top ? str(p.current_domain) : null);
          w.instruction = str(e.instruction) || (top ? str(p.instruction) : null) || w.instruction;
          learnStep(w, num(e.current_step), str(e.action) || (top ? str(p.action) : null), null);
        }
      }
      w.evaluating = Boolean(e.evaluating) && w.task !== null && !ahead;
      renderWorker(st, w, entries.length);
    });
    st.workers.forEach(function (w, name) {
      if (!seen.has(name)) {
        w.node.remove();
        st.workers.delete(name);
      }
    });
    st.node.dataset.workers = String(st.workers.size);
  }

  function renderWorker(st, w, count) {
    var node = w.node;
    var p = st.progress || NO_PROGRESS;
    field(node, 'w-name').textContent = count > 1 ? 'Worker ' + w.name : 'Now';
    var taskButton = field(node, 'w-task');
    setText(taskButton, w.task || 'next task starting…');
    taskButton.disabled = !w.task;
    taskButton.title = w.task ? 'show its trajectory so far' : '';
    field(node, 'w-domain').textContent = w.task && w.domain ? w.domain : '';
    var stepText = '';
    if (w.task && w.step !== null) stepText = 'step ' + w.step + (num(p.max_steps) ? ' / ' + p.max_steps : '');
    if (w.task && w.evaluating) stepText += (stepText ? ' · ' : '') + 'evaluating';
    field(node, 'w-step').textContent = stepText;
    node.dataset.task = w.task || '';
    node.dataset.step = w.step === null || !w.task ? '' : String(w.step);
    var instruction = field(node, 'w-instruction');
    instruction.textContent = w.instruction || '';
    instruction.hidden = !w.instruction;
    var action = field(node, 'w-action');
    action.textContent = w.action || '';
    action.hidden = !w.action;
    // The latest screenshot of this task: hidden until one arrives (a `step` event with one).
    // A new src keeps the previous picture on screen until the new one has loaded.
    var box = field(node, 'w-shot-box');
    var img = field(node, 'w-shot');
    if (w.task && w.shot) {
      if (img.dataset.src !== w.shot) {
        img.src = w.shot;
        img.dataset.src = w.shot;
      }
      img.alt = 'screenshot after step ' + w.shotStep;
      img.dataset.step = String(w.shotStep);
      field(node, 'w-shot-caption').textContent = 'step ' + w.shotStep;
      box.hidden = false;
    } else {
      if (img.dataset.src) {
        img.removeAttribute('src');
        delete img.dataset.src;
        delete img.dataset.step;
      }
      box.hidden = true;
    }
  }

  // A `step` event (SPEC §2.2, §8): one per agent step, sent at once (never coalesced).
  function onStep(data) {
    if (typeof data.task_id !== 'string' || typeof data.step !== 'number') return;
    var st = targetState(data.target || DEFAULT_TARGET);
    if (st.rows.has(data.task_id) || isOver(st)) return; // late news of a finished task
    observeLogTime(st, data.at, false);
    var name = typeof data.worker === 'string' ? data.worker : null;
    var w = null;
    if (name !== null && st.workers.has(name)) w = st.workers.get(name);
    if (w === null) {
      st.workers.forEach(function (other) { if (other.task === data.task_id) w = other; });
    }
    if (w === null && name !== null && st.progress) w = workerState(st, name);
    if (w === null && st.workers.size === 1) w = st.workers.values().next().value;
    if (w === null) return; // no progress yet (it comes first on every connection)
    if (w.task !== data.task_id) {
      setTask(w, data.task_id);
      w.stepTask = data.task_id;
    }
    w.evaluating = false;
    learnStep(w, data.step, str(data.action), screenshotUrl(st.name, data.task_id, data.screenshot));
    renderWorker(st, w, Math.max(1, st.workers.size));
    renderProgress(st);
    renderTimes(st);
  }

  // ------------------------------------------------------------------ times

  // Wall time: from the run's first record (progress.started_at) to the log clock's "now" —
  // both the benchmark machine's clock. ETA: the run's own pace (its finished tasks over the
  // log time they took) over the tasks still to do. Without started_at (an older server):
  // the time this page watched, labelled so, and the pace it saw.
  function renderTimes(st) {
    var p = st.progress;
    var node = st.node;
    if (!p || !st.observed) return;
    var started = logTime(p.started_at);
    var finished = isOver(st);
    var done = doneCount(st);
    var total = totalCount(st);
    var elapsedEl = field(node, 'elapsed');
    var eta = field(node, 'eta');
    if (started === null) {
      field(node, 'elapsed-label').textContent = 'Watching for';
      var watched = (Date.now() - st.observed.at) / 1000;
      setText(elapsedEl, finished ? null : fmtDuration(watched));
      var doneSince = (p.tasks_completed || 0) - st.observed.completed;
      if (finished) eta.textContent = 'done';
      else if (typeof total === 'number' && doneSince > 0 && watched > 0 && total >= done) eta.textContent = fmtDuration((total - done) * watched / doneSince);
      else eta.textContent = '—';
      return;
    }
    field(node, 'elapsed-label').textContent = 'Wall time';
    elapsedEl.title = 'since the run\'s first log record, ' + p.started_at + ' (the benchmark machine\'s clock)';
    var c = st.clock;
    var now = finished ? c.latest : logNow(st);
    if (now === null) {
      elapsedEl.textContent = 'since ' + String(p.started_at).replace('T', ' ').replace(/\.\d+$/, '');
    } else {
      var lowerBound = !finished && c.offset === null;
      elapsedEl.textContent = (lowerBound ? '≥ ' : '') + fmtDuration(Math.max(0, now - started) / 1000);
    }
    if (finished) {
      eta.textContent = 'done';
    } else if (typeof total === 'number' && total > done && done > 0 && c.lastFinish !== null && c.lastFinish > started) {
      var perTask = (c.lastFinish - started) / done;
      var since = now === null ? 0 : Math.max(0, now - c.lastFinish);
      var left = (total - done) * perTask - since;
      eta.textContent = left > 0 ? fmtDuration(left / 1000) : 'soon';
    } else {
      eta.textContent = '—';
    }
  }

  // ------------------------------------------------------------------ scores, domains, results

  function renderScores(st) {
    var count = 0;
    var passed = 0;
    var sum = 0;
    var scored = 0;
    var domains = new Map();
    var changes = { fixed: 0, regressed: 0, compared: 0 };
    st.rows.forEach(function (row) {
      var r = row.result;
      count += 1;
      if (typeof r.change === 'string' && r.change) {
        changes.compared += 1;
        if (r.change === 'fixed' || r.change === 'regressed') changes[r.change] += 1;
      }
      if (r.success) passed += 1;
      var d = typeof r.domain === 'string' && r.domain ? r.domain : '—';
      var agg = domains.get(d);
      if (!agg) domains.set(d, agg = { tasks: 0, passed: 0, sum: 0, scored: 0 });
      agg.tasks += 1;
      if (r.success) agg.passed += 1;
      // WAA's own "Average score": over the tasks that produced a Result; one that raised
      // has none and is left out (the server's figure is the same, live and at the end).
      if (typeof r.score === 'number') {
        sum += r.score;
        scored += 1;
        agg.sum += r.score;
        agg.scored += 1;
      }
    });
    var node = st.node;
    setText(field(node, 'pass-rate'), count ? passed + ' / ' + count + ' (' + pct(passed, count).toFixed(1) + '%)' : null);
    // At the run's end the server's figure (the log's own "Average score") is the word.
    var average = st.complete && typeof st.complete.average_score === 'number' ? st.complete.average_score : (scored ? sum / scored : null);
    setText(field(node, 'avg-score'), average === null ? null : average.toFixed(2));
    node.dataset.passed = String(passed);
    node.dataset.results = String(count);
    // With a baseline: how many results changed, next to the pass rate.
    field(node, 'changes').hidden = changes.compared === 0;
    field(node, 'results-table').dataset.baseline = changes.compared ? 'true' : 'false';
    field(node, 'fixed').textContent = changes.fixed + ' fixed';
    field(node, 'regressed').textContent = changes.regressed + ' regressed';
    field(node, 'changes').dataset.regressed = String(changes.regressed);
    field(node, 'changes').dataset.fixed = String(changes.fixed);
    st.average = average;
    renderDomains(st, domains);
    renderOverview();
  }

  function renderDomains(st, domains) {
    var body = field(st.node, 'domains');
    while (body.firstChild) body.removeChild(body.firstChild);
    Array.from(domains.keys()).sort().forEach(function (d) {
      var agg = domains.get(d);
      var tr = document.createElement('tr');
      tr.dataset.domain = d;
      cell(tr, d, 'col-domain-name');
      cell(tr, String(agg.tasks), 'col-num');
      cell(tr, agg.passed + ' (' + pct(agg.passed, agg.tasks).toFixed(0) + '%)', 'col-num');
      cell(tr, agg.scored ? (agg.sum / agg.scored).toFixed(2) : 'N/A', 'col-num');
      body.appendChild(tr);
    });
    field(st.node, 'domains-box').hidden = domains.size === 0;
  }

  function renderRunEnd(st) {
    var el = field(st.node, 'run-end');
    var c = st.complete;
    st.node.dataset.finished = c ? 'true' : 'false';
    if (!c) {
      el.hidden = true;
      el.textContent = '';
      delete el.dataset.interrupted;
      return;
    }
    var rate = c.tasks_completed ? ' (' + pct(c.tasks_passed, c.tasks_completed).toFixed(1) + '%)' : '';
    var planned = typeof c.total_tasks === 'number' && c.total_tasks !== c.tasks_completed;
    el.dataset.interrupted = c.interrupted ? 'true' : 'false';
    el.textContent = (c.interrupted ? 'Run interrupted: ' : 'Run complete: ') + c.tasks_passed + ' / ' + c.tasks_completed + ' passed' + rate +
      (typeof c.average_score === 'number' ? ', average score ' + c.average_score.toFixed(2) : '') +
      (planned ? ' — ' + c.total_tasks + ' tasks were planned' : '') +
      (c.interrupted ? ' — the benchmark was stopped before its end' : '') +
      baselineSummary(c.baseline);
    el.hidden = false;
  }

  // run_complete.baseline (SPEC §9) in one sentence; '' without one.
  function baselineSummary(b) {
    if (!b || typeof b !== 'object' || typeof b.run !== 'string') return '';
    function n(key) { return num(b[key]) === null ? 0 : b[key]; }
    function avg(key) { return num(b[key]) === null ? 'N/A' : b[key].toFixed(2); }
    return '. Against ' + b.run + ': ' + n('fixed') + ' fixed, ' + n('regressed') + ' regressed, ' + n('same') + ' same, ' +
      n('new') + ' new; passed ' + n('passed_then') + ' / ' + n('tasks_then') + ' then, ' + n('passed_now') + ' / ' + n('tasks_now') +
      ' now; average ' + avg('average_then') + ' → ' + avg('average_now') + '.';
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
    var taskCell = cell(tr, '', 'col-task');
    var open = document.createElement('button');
    open.type = 'button';
    open.className = 'task-link';
    open.title = 'show its trajectory';
    open.textContent = String(r.task_id);
    taskCell.appendChild(open);
    cell(tr, r.domain ? String(r.domain) : '—', 'col-domain');
    var ok = cell(tr, r.success ? '✓' : '✗', 'col-result ' + (r.success ? 'pass' : 'fail'));
    ok.title = r.success ? 'passed' : 'failed';
    cell(tr, fmtScore(r.score), 'col-score');
    // Against the baseline run (SPEC §9): a regression is marked the moment it happens.
    var change = typeof r.change === 'string' ? r.change : '';
    var changeCell = cell(tr, Object.prototype.hasOwnProperty.call(CHANGE_TEXT, change) ? CHANGE_TEXT[change] : change, 'col-change');
    if (change) {
      changeCell.title = changeDescription(r);
      tr.dataset.change = change;
    } else {
      delete tr.dataset.change;
    }
    var kind = !r.success && typeof r.failure_kind === 'string' ? r.failure_kind : '';
    var kindCell = cell(tr, kind ? FAILURE_TEXT[kind] || kind : '', 'col-kind');
    if (kind) kindCell.dataset.kind = kind;
    cell(tr, num(r.duration_s) === null ? '' : fmtDuration(r.duration_s), 'col-duration');
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
    observeLogTime(st, data.finished_at, true);
    // The counter and the worker's current task follow the result at once, not the
    // next (coalesced) progress: this worker is between tasks now.
    st.workers.forEach(function (w) {
      if (w.task === data.task_id) {
        setTask(w, null);
        w.stepTask = null;
        renderWorker(st, w, st.workers.size);
      }
    });
    renderScores(st);
    renderProgress(st);
    renderTimes(st);
  }

  function onRunComplete(data, id) {
    var st = targetState(data.target || DEFAULT_TARGET);
    if (!followRun(st, runFromId(id, st.name))) return;
    st.complete = data;
    renderRunEnd(st);
    renderScores(st);
    renderProgress(st);
    renderWorkers(st);
    renderTimes(st);
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

  // ------------------------------------------------------------------ overview (several targets)

  function renderOverview() {
    var wrap = document.getElementById('overview-wrap');
    if (!wrap) return;
    var several = targets.size > 1;
    wrap.hidden = !several;
    if (!several) return;
    var body = wrap.querySelector('tbody');
    Array.from(targets.keys()).sort().forEach(function (name) {
      var st = targets.get(name);
      if (!st.overview) {
        var tr = document.createElement('tr');
        tr.dataset.overview = name;
        var nameCell = cell(tr, '', 'ov-name');
        var link = document.createElement('button');
        link.type = 'button';
        link.className = 'task-link';
        link.textContent = name;
        link.addEventListener('click', function () { st.node.scrollIntoView({ behavior: 'smooth', block: 'start' }); });
        nameCell.appendChild(link);
        ['ov-status', 'ov-tasks', 'ov-pass', 'ov-avg', 'ov-now'].forEach(function (c) { cell(tr, '', c); });
        st.overview = tr;
      }
      body.appendChild(st.overview); // (re)appended in name order
      var tr2 = st.overview;
      var node = st.node;
      tr2.querySelector('.ov-status').textContent = field(node, 'phase').textContent + ', ' + field(node, 'waa').textContent;
      tr2.querySelector('.ov-tasks').textContent = field(node, 'counter').textContent;
      tr2.querySelector('.ov-pass').textContent = field(node, 'pass-rate').textContent;
      tr2.querySelector('.ov-avg').textContent = field(node, 'avg-score').textContent;
      var now;
      if (st.complete) now = st.complete.interrupted ? 'interrupted' : 'finished';
      else if (node.dataset.stalled === 'true') now = field(node, 'stalled').textContent;
      else now = field(node, 'current-task').textContent;
      tr2.querySelector('.ov-now').textContent = now;
      tr2.dataset.stalled = node.dataset.stalled || 'false';
    });
  }

  // ------------------------------------------------------------------ the trajectory dialog

  var traj = { seq: 0, steps: [], index: -1, opener: null };

  function dialog() {
    return document.getElementById('trajectory');
  }

  // opener: the element to give the focus back to when the dialog closes.
  function openTrajectory(st, taskId, opener) {
    var dlg = dialog();
    var row = st.rows.get(taskId);
    var r = row ? row.result : { task_id: taskId };
    traj.seq += 1;
    var seq = traj.seq;
    traj.steps = [];
    traj.index = -1;
    traj.opener = opener || null;
    dlg.dataset.task = taskId;
    dlg.dataset.forTarget = st.name;
    dlg.dataset.state = 'loading';
    fillTaskFacts(st, r);
    fillError(r.error ? { message: r.error, traceback: null } : null);
    var list = field(dlg, 'steps');
    while (list.firstChild) list.removeChild(list.firstChild);
    field(dlg, 'hint').hidden = true;
    field(dlg, 'status').textContent = 'Loading the trajectory…';
    if (!dlg.open) dlg.showModal();
    fetch(taskUrl(st.name, taskId), { cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (body) {
          if (seq !== traj.seq) return;
          if (!response.ok) {
            var why = body && typeof body.error === 'string' ? body.error : 'HTTP ' + response.status;
            dlg.dataset.state = 'missing';
            field(dlg, 'status').textContent = response.status === 404
              ? 'No trajectory for this task on the server (' + why + ').'
              : 'Could not load the trajectory: ' + why;
            return;
          }
          showTrajectory(st, taskId, r, body);
        });
      })
      .catch(function (err) {
        if (seq !== traj.seq) return;
        dlg.dataset.state = 'failed';
        field(dlg, 'status').textContent = 'Could not load the trajectory: ' + err;
      });
  }

  function fillTaskFacts(st, r) {
    var dlg = dialog();
    field(dlg, 'task').textContent = String(r.task_id);
    setText(field(dlg, 'target'), st.name);
    setText(field(dlg, 'domain'), str(r.domain));
    setText(field(dlg, 'result'), typeof r.success === 'boolean' ? (r.success ? '✓ passed' : '✗ failed') : 'running');
    setText(field(dlg, 'score'), typeof r.success === 'boolean' ? fmtScore(r.score) : null);
    var kind = !r.success && typeof r.failure_kind === 'string' ? FAILURE_TEXT[r.failure_kind] || r.failure_kind : null;
    setText(field(dlg, 'failure'), kind);
    setText(field(dlg, 'steps-count'), num(r.steps));
    setText(field(dlg, 'duration'), num(r.duration_s) === null ? null : fmtDuration(r.duration_s));
    setText(field(dlg, 'worker'), str(r.worker));
    var change = field(dlg, 'change');
    var changeText = changeDescription(r);
    change.textContent = changeText || '';
    change.parentNode.hidden = !changeText;
    if (changeText) change.dataset.change = r.change;
    else delete change.dataset.change;
    var instruction = field(dlg, 'instruction');
    instruction.textContent = str(r.instruction) || '';
    instruction.hidden = !str(r.instruction);
  }

  function fillError(error) {
    var dlg = dialog();
    var box = field(dlg, 'error');
    var message = error && str(error.message);
    var traceback = error && str(error.traceback);
    box.hidden = !(message || traceback);
    field(dlg, 'error-message').textContent = message || '';
    var pre = field(dlg, 'traceback');
    pre.textContent = traceback || '';
    pre.hidden = !traceback;
  }

  function showTrajectory(st, taskId, known, body) {
    var dlg = dialog();
    if (!body || typeof body !== 'object' || !Array.isArray(body.steps)) {
      dlg.dataset.state = 'failed';
      field(dlg, 'status').textContent = 'The server\'s answer is not a trajectory.';
      return;
    }
    var task = body.task && typeof body.task === 'object' ? Object.assign({}, known, body.task) : known;
    task.task_id = taskId;
    if (task.finished === false) { // still running: the facts of a running task
      delete task.success;
      if (num(task.steps) === null && num(task.current_step) !== null) task.steps = task.current_step;
    }
    fillTaskFacts(st, task);
    var error = body.error && typeof body.error === 'object' ? body.error : null;
    fillError(error || (known.error ? { message: known.error, traceback: null } : null));
    // The server says why there are no steps (no results folder, no folder for this task, the
    // SSH link down): the task's own facts above stay, this is not an error of the page.
    var about = body.trajectory && typeof body.trajectory === 'object' ? body.trajectory : null;
    if (about && about.found === false) {
      dlg.dataset.state = 'missing';
      field(dlg, 'status').textContent = 'No trajectory for this task on the server (' +
        (str(about.reason) || 'not found') + ').';
      return;
    }
    var list = field(dlg, 'steps');
    traj.steps = [];
    body.steps.forEach(function (s, i) {
      if (!s || typeof s !== 'object') return;
      var li = document.createElement('li');
      li.className = 'traj-step';
      li.tabIndex = -1;
      var n = num(s.step) === null ? i : s.step;
      li.dataset.step = String(n);
      var head = document.createElement('div');
      head.className = 'step-head';
      var facts = ['Step ' + n];
      if (num(s.reward) !== null) facts.push('reward ' + s.reward);
      if (s.done === true) facts.push('done');
      if (str(s.at)) facts.push(String(s.at).replace('T', ' '));
      head.textContent = facts.join(' · ');
      li.appendChild(head);
      var action = document.createElement('pre');
      action.className = 'step-action';
      action.textContent = typeof s.action === 'string' ? s.action : s.action === null || s.action === undefined ? '' : JSON.stringify(s.action);
      li.appendChild(action);
      var shot = screenshotUrl(st.name, taskId, s.screenshot);
      if (shot) {
        // Loaded when scrolled near (lazy), with the page's token; a click opens it full size.
        var link = document.createElement('a');
        link.className = 'step-shot';
        link.href = shot;
        link.target = '_blank';
        link.rel = 'noopener noreferrer';
        var img = document.createElement('img');
        img.loading = 'lazy';
        img.decoding = 'async';
        img.alt = 'screenshot after step ' + n;
        img.src = shot;
        link.appendChild(img);
        li.appendChild(link);
      }
      li.addEventListener('click', function () { selectStep(traj.steps.indexOf(li)); });
      list.appendChild(li);
      traj.steps.push(li);
    });
    dlg.dataset.state = 'loaded';
    field(dlg, 'status').textContent = traj.steps.length
      ? traj.steps.length + (traj.steps.length === 1 ? ' step' : ' steps') + (task.finished === false ? ' so far (the task is running)' : '')
      : 'No steps recorded' + (task.finished === false ? ' yet.' : '.');
    field(dlg, 'hint').hidden = traj.steps.length < 2;
    if (traj.steps.length) selectStep(0, true);
  }

  function selectStep(index, quiet) {
    if (index < 0 || index >= traj.steps.length) return;
    if (traj.index >= 0 && traj.steps[traj.index]) traj.steps[traj.index].removeAttribute('aria-current');
    traj.index = index;
    var li = traj.steps[index];
    li.setAttribute('aria-current', 'step');
    dialog().dataset.step = li.dataset.step;
    if (!quiet) {
      li.focus({ preventScroll: true });
      li.scrollIntoView({ block: 'start' }); // the selected step at the top of the list
    }
  }

  function setUpDialog() {
    var dlg = dialog();
    dlg.addEventListener('keydown', function (e) {
      if (e.key === 'ArrowRight') {
        selectStep(traj.index + 1);
        e.preventDefault();
      } else if (e.key === 'ArrowLeft') {
        selectStep(traj.index - 1);
        e.preventDefault();
      }
      // Esc: the dialog's own cancel closes it.
    });
    dlg.querySelector('[data-action="close"]').addEventListener('click', function () { dlg.close(); });
    // A click on the backdrop (outside the dialog's box) closes it too.
    dlg.addEventListener('click', function (e) {
      if (e.target !== dlg) return;
      var r = dlg.getBoundingClientRect();
      if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) dlg.close();
    });
    dlg.addEventListener('close', function () {
      traj.seq += 1; // a late answer must not fill a closed dialog
      dlg.dataset.state = 'closed';
      if (traj.opener && traj.opener.isConnected) traj.opener.focus();
      traj.opener = null;
    });
  }

  // ------------------------------------------------------------------ events in

  var HANDLERS = {
    status: onStatus,
    progress: onProgress,
    step: onStep,
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
    replayDone = false;
    connectionSeq += 1;
    var es = new EventSource(streamUrl(withId));
    source = es;
    es.onopen = function () {
      restartDelay = 1000;
      setConnection('live');
    };
    ['status', 'progress', 'step', 'task_complete', 'run_complete'].forEach(function (type) {
      es.addEventListener(type, function (e) { dispatch(type, e); });
    });
    // Both the app's "error" events and EventSource's own connection errors arrive here.
    es.addEventListener('error', function (e) {
      if (typeof e.data === 'string') {
        dispatch('error', e);
        return;
      }
      if (es !== source) return;
      replayDone = false; // the browser reconnects by itself: a replay comes first again
      connectionSeq += 1;
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
    replayDone = false; // the snapshot's results are old news, like a replay
    connectionSeq += 1;
    Object.keys(all).forEach(function (name) {
      if (onlyTarget && name !== onlyTarget) return;
      var t = all[name] || {};
      (t.results || []).forEach(function (r) { onTaskComplete(Object.assign({ target: name }, r), null); });
      if (t.status) onStatus(Object.assign({ target: name }, t.status));
      if (t.progress) onProgress(Object.assign({ target: name }, t.progress));
      if (t.run && t.run.complete) onRunComplete(Object.assign({ target: name }, t.run.complete), null);
    });
  }

  function poll() {
    fetch(apiUrl('api/benchmark'), { cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (body) { applySnapshot(body); setConnection('polling'); })
      .catch(function () { setConnection('reconnecting', 'the server is unreachable'); });
  }

  function tick() {
    targets.forEach(function (st) {
      renderTimes(st);
      if (st.node.dataset.stalled === 'true') {
        renderStalled(st);
        renderOverview();
      }
    });
  }

  function start() {
    setUpDialog();
    setInterval(tick, 1000);
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
