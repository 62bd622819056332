// Transactor's live dashboard: two server-sent event streams (/events/metrics, /events/transfers),
// uPlot charts, and the runs API, all with the viewer's API key (docs/security.md). No build step,
// nothing loaded from elsewhere.
'use strict';

(() => {
  const WINDOW_SECONDS = 300;   // points on the charts: one per second
  const LOG_ROWS = 200;         // rows kept in the transaction log
  const RENDER_EVERY_MS = 250;  // the log is redrawn at most this often, however fast events arrive
  const NEW_ROWS_PER_DRAW = 10; // and gains at most this many rows a redraw (the newest): at thousands a
                                // second nobody reads more, and every row costs the page a layout
  const FLASH_UP_TO = 5;        // new rows flash only when a redraw adds at most this many,
  const FLASH_QUIET_MS = 2000;  // and the log gained none for this long: a flash is an animation the
                                // browser repaints 60 times a second, so at a steady few rows per redraw
                                // flashing rows cost it a third of a core
  const LOG_PER_SECOND = 40;    // the log's stream is a sample: the server sends at most this many a
                                // second (the newest) and counts the rest, so the page reads what it draws
  const ACCOUNT_REFRESH_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const one = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const two = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  const money = (minor) => (minor / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const short = (n) => n >= 1e6 ? `${one.format(n / 1e6)}M` : n >= 1e3 ? `${one.format(n / 1e3)}k` : int.format(n);
  const time = (iso) => {
    const d = new Date(iso);
    return d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  };
  const text = (el, value) => { if (el.textContent !== value) { el.textContent = value; } };
  const el = (tag, cls, content) => {
    const e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (content !== undefined) { e.textContent = content; }
    return e;
  };

  // ---- the API key --------------------------------------------------------------------------
  // Given once as #key=... (a fragment never reaches a server or its logs) or typed into the form,
  // kept for this tab only, and sent as a Bearer header. The event streams are read with fetch,
  // not EventSource, which cannot send a header.
  const KEY_ITEM = 'transactor.apiKey';
  const fromFragment = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromFragment) {
    sessionStorage.setItem(KEY_ITEM, fromFragment);
    history.replaceState(null, '', location.pathname + location.search);
  }
  const apiKey = () => sessionStorage.getItem(KEY_ITEM);
  const withKey = (headers = {}) => (apiKey() ? { ...headers, Authorization: `Bearer ${apiKey()}` } : headers);
  const api = (path, init = {}) => fetch(path, { ...init, headers: withKey(init.headers) });
  function askForKey(message) {
    $('key-form').hidden = false;
    text($('key-note'), message);
  }
  $('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const key = $('key-input').value.trim();
    if (key) { sessionStorage.setItem(KEY_ITEM, key); location.reload(); }
  });

  /** Reads a server-sent event stream with the key, and reconnects after 2 s with Last-Event-ID, until aborted. */
  function stream(path, handlers, connected, signal) {
    let lastId = null;
    const connect = async () => {
      try {
        const headers = withKey({ Accept: 'text/event-stream' });
        if (lastId !== null) { headers['Last-Event-ID'] = lastId; }
        const response = await fetch(path, { headers, cache: 'no-store', signal });
        if (response.status === 401 || response.status === 403) {
          connected(false);
          askForKey(response.status === 401 ? 'This ledger needs an API key.' : 'This key may not watch the ledger (an admin key is needed).');
          return;
        }
        if (!response.ok || !response.body) { throw new Error(`HTTP ${response.status}`); }
        connected(true);
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        let event = { type: 'message', data: [], id: null };
        for (;;) {
          const { value, done } = await reader.read();
          if (done) { break; }
          buffer += value;
          // One pass over what arrived (the server sends many events per chunk); the unfinished line stays.
          let start = 0;
          let end;
          while ((end = buffer.indexOf('\n', start)) >= 0) {
            let line = buffer.slice(start, end);
            start = end + 1;
            if (line.endsWith('\r')) { line = line.slice(0, -1); }
            if (line === '') {
              if (event.id !== null) { lastId = event.id; }
              if (event.data.length > 0 && handlers[event.type]) { handlers[event.type](event.data.join('\n')); }
              event = { type: 'message', data: [], id: null };
            } else if (!line.startsWith(':')) {
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
              if (field === 'event') { event.type = value; } else if (field === 'data') { event.data.push(value); } else if (field === 'id') { event.id = value; }
            }
          }
          buffer = buffer.slice(start);
        }
      } catch (e) {
        // A dropped connection: try again below.
      }
      if (signal?.aborted) { return; }
      connected(false);
      setTimeout(connect, 2000);
    };
    connect();
  }

  // ---- charts -------------------------------------------------------------------------------
  const data = { t: [], committed: [], rejected: [], p50: [], p99: [] };

  function chart(container, series, yLabel) {
    const opts = {
      width: Math.max(200, container.clientWidth),
      height: 180,
      legend: { show: false },
      cursor: { points: { size: 6 } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: '#8b949e', grid: { stroke: '#262d36', width: 1 }, ticks: { stroke: '#262d36' } },
        { stroke: '#8b949e', grid: { stroke: '#262d36', width: 1 }, ticks: { stroke: '#262d36' }, size: 56, label: yLabel, labelSize: 14,
          values: (u, vals) => vals.map((v) => short(v)) },
      ],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, fill: s.fill, points: { show: false }, spanGaps: false }))],
    };
    const plot = new uPlot(opts, [[], ...series.map(() => [])], container);
    new ResizeObserver(() => plot.setSize({ width: Math.max(200, container.clientWidth), height: 180 })).observe(container);
    return plot;
  }

  const throughputChart = chart($('chart-throughput'), [
    { label: 'committed/s', color: '#3fb950', fill: 'rgba(63,185,80,0.12)' },
    { label: 'rejected/s', color: '#f85149' },
  ], 'per second');
  const latencyChart = chart($('chart-latency'), [
    { label: 'p50', color: '#58a6ff' },
    { label: 'p99', color: '#bc8cff', fill: 'rgba(188,140,255,0.08)' },
  ], 'ms');

  function plotPoint(m) {
    data.t.push(Date.parse(m.time) / 1000);
    data.committed.push(m.committed);
    data.rejected.push(m.rejected);
    data.p50.push(m.p50_ms);
    data.p99.push(m.p99_ms);
    if (data.t.length > WINDOW_SECONDS) {
      for (const key of Object.keys(data)) { data[key].shift(); }
    }

    throughputChart.setData([data.t, data.committed, data.rejected]);
    latencyChart.setData([data.t, data.p50, data.p99]);
  }

  // ---- metrics stream ------------------------------------------------------------------------
  const connection = { metrics: false, transfers: false };
  function showConnection() {
    const pill = $('conn');
    if (connection.metrics && connection.transfers) {
      pill.className = 'pill pill-ok';
      text(pill, 'live');
    } else {
      pill.className = 'pill pill-wait';
      text(pill, 'reconnecting…');
    }
  }

  function onMetrics(m) {
    plotPoint(m);
    $('dashboard-link').hidden = !m.orleans_dashboard;
    text($('tps'), int.format(m.committed));
    text($('rejected'), int.format(m.rejected));
    text($('p50'), m.p50_ms == null ? '–' : two.format(m.p50_ms));
    text($('p99'), m.p99_ms == null ? '–' : two.format(m.p99_ms));

    text($('inflight'), int.format(m.in_flight));
    text($('places'), int.format(m.places));
    text($('queued'), int.format(m.queued));
    text($('queue-limit'), int.format(m.queue_limit));
    text($('refused'), one.format(m.refused));
    text($('api-limit'), int.format(m.api_limit));
    text($('api-limit-mode'), m.api_limit_mode === 'Adaptive' ? 'adaptive' : 'fixed');
    renderChaos(m.chaos);
    const share = m.queue_limit > 0 ? Math.min(1, m.queued / m.queue_limit) : 0;
    const bar = $('queue-bar');
    bar.style.width = `${(share * 100).toFixed(1)}%`;
    bar.style.background = share > 0.8 ? 'var(--bad)' : share > 0.5 ? 'var(--warn)' : 'var(--ok)';
    const state = $('pressure-state');
    state.className = m.backpressure ? 'pill pill-backpressure' : 'pill pill-ok';
    text(state, m.backpressure ? 'BACKPRESSURE' : 'OK');

    renderSilos(m.silos);
    renderBusiest(m.busiest);
    for (const run of m.runs) { renderRun(run); }
  }

  // Chaos mode (docs/overload.md): faults are being injected on purpose; say so where no one can miss it.
  function renderChaos(chaos) {
    const pill = $('chaos');
    pill.hidden = !chaos;
    if (chaos) {
      pill.className = chaos.armed ? 'pill pill-chaos' : 'pill pill-wait';
      text(pill, `CHAOS MODE${chaos.armed ? '' : ' (disarmed)'} · ${chaos.silos.join(', ')} · ${int.format(chaos.faults)} faults injected`);
      pill.title = chaos.armed
        ? 'Transactor:Chaos is on: these silos inject the faults they are configured with (delays, dropped calls, storage failures) on purpose.'
        : 'Transactor:Chaos is on but disarmed: these silos inject nothing until their armed file exists.';
    }
  }

  function renderSilos(silos) {
    const body = $('silos');
    const active = silos.filter((s) => s.status === 'Active').length;
    text($('silo-count'), `${active} active of ${silos.length}`);
    const rows = silos.map((s) => {
      const tr = el('tr');
      tr.append(el('td', null, s.name), el('td', `status-${s.status}`, s.status),
        el('td', 'r', int.format(s.accounts)), el('td', 'r', int.format(s.shards)), el('td', 'r', int.format(s.activations)));
      const cell = el('td');
      const wrap = el('div', 'share');
      const bar = el('div', 'share-bar');
      bar.style.width = `${Math.round(s.share * 120)}px`;
      wrap.append(bar, el('span', 'muted', `${Math.round(s.share * 100)} % · ${int.format(s.per_second)}/s`));
      cell.append(wrap);
      tr.append(cell);
      return tr;
    });
    body.replaceChildren(...rows);
  }

  function renderBusiest(busiest) {
    const list = $('busiest');
    if (busiest.length === 0) {
      list.replaceChildren(el('li', 'muted', 'no movements in the last seconds'));
      return;
    }

    list.replaceChildren(...busiest.map((b) => {
      const li = el('li');
      const a = el('a', null, b.account);
      a.addEventListener('click', () => { $('account-id').value = b.account; choose(b.account); });
      li.append(a, el('span', 'muted', ` · ${one.format(b.movements)}`));
      return li;
    }));
  }

  // ---- runs ---------------------------------------------------------------------------------
  const runElements = new Map();

  function renderRun(run) {
    let li = runElements.get(run.id);
    if (!li) {
      li = el('li', 'run');
      li.dataset.runId = run.id;
      li.innerHTML = '<div class="run-head"><span class="run-title"></span><span class="run-actions"></span></div>'
        + '<div class="progress"><div class="progress-fill"></div></div><div class="run-meta"></div>';
      runElements.set(run.id, li);
      $('runs').prepend(li);
    }

    const ended = ['done', 'cancelled', 'failed', 'abandoned'].includes(run.state);
    li.className = `run ${run.state}`;
    const title = li.querySelector('.run-title');
    title.title = `run ${run.id}` + (run.executor ? `, executed by API instance ${run.executor}` : '');
    title.replaceChildren(document.createTextNode(run.name ?? `run …${run.id.slice(-8)}`),
      el('span', 'muted', ` · ${short(run.count)} transfers over ${int.format(run.accounts)} accounts`));
    const pct = run.count > 0 ? Math.min(100, Math.floor((run.done / run.count) * 100)) : 0;
    li.querySelector('.progress-fill').style.width = `${pct}%`;

    const meta = li.querySelector('.run-meta');
    const parts = [
      el('span', 'run-progress', `${pct} %`),
      el('span', null, `${int.format(run.done)} / ${int.format(run.count)}`),
      el('span', null, `${int.format(run.per_second)} transfers/s`),
      el('span', null, run.state + (run.cancel_requested && !ended ? ' (cancelling)' : '')),
    ];
    if (run.rejected > 0) { parts.push(el('span', null, `${int.format(run.rejected)} rejected`)); }
    if (run.unfinished > 0) { parts.push(el('span', 'books-bad', `${int.format(run.unfinished)} unfinished`)); }
    if (run.books) {
      parts.push(run.books.balanced
        ? el('span', 'books-ok run-books', `books balance ✓ ${money(run.books.actual_minor)}`)
        : el('span', 'books-bad run-books', `books DO NOT balance: ${money(run.books.actual_minor)} vs ${money(run.books.expected_minor)}`));
    }
    if (run.error) { parts.push(el('span', 'books-bad', run.error)); }
    meta.replaceChildren(...parts);

    const actions = li.querySelector('.run-actions');
    if (!ended && !run.cancel_requested) {
      if (!actions.querySelector('button')) {
        const cancel = el('button', 'btn btn-small', 'Cancel');
        cancel.addEventListener('click', () => api(`runs/${encodeURIComponent(run.id)}/cancel`, { method: 'POST' }));
        actions.replaceChildren(cancel);
      }
    } else {
      actions.replaceChildren(el('span', 'muted', ended ? `${two.format(run.seconds)} s` : ''));
    }
  }

  async function launch(count) {
    const error = $('launch-error');
    text(error, '');
    const accounts = Number($('run-accounts').value || 1000);
    const name = $('run-name').value.trim();
    try {
      const response = await api('runs', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(name ? { count, accounts, name } : { count, accounts }),
      });
      const body = await response.json();
      if (!response.ok) {
        text(error, body.detail ?? body.title ?? `HTTP ${response.status}`);
        return;
      }

      renderRun(body);
    } catch (e) {
      text(error, `The API did not answer: ${e.message}`);
    }
  }

  for (const button of document.querySelectorAll('button[data-count]')) {
    button.addEventListener('click', () => launch(Number(button.dataset.count)));
  }
  $('launch-custom').addEventListener('click', () => {
    const count = Number($('custom-count').value);
    if (!Number.isInteger(count) || count < 1) {
      text($('launch-error'), 'Enter a whole number of transfers.');
      return;
    }
    launch(count);
  });

  // ---- accounts -----------------------------------------------------------------------------
  let watched = null; // { id, version }

  function showAccount(a) {
    $('account').hidden = false;
    text($('account-name'), a.id + (a.owner ? ` (${a.owner})` : ''));
    text($('account-currency'), a.currency);
    $('account-locked').hidden = !a.locked;
    setBalance('account-available', a.available);
    setBalance('account-held', a.held);
    setBalance('account-reserved', a.reserved);
    setBalance('account-incoming', a.incoming);
    watched = { id: a.id, version: a.version };
  }

  // The account's own stream (opened by choose, closed when the account cannot be read).
  let following = null; // { id, controller }
  function follow(id) {
    if (following?.id === id) { return; }
    following?.controller.abort();
    following = null;
    if (id === null) { return; }
    const controller = new AbortController();
    following = { id, controller };
    // A sample too: a busy account's newest state is all the page shows (4 sends a second, the newest of each).
    stream(`events/transfers?account=${encodeURIComponent(id)}&max_per_second=4`, { transfer: watch }, () => {}, controller.signal);
  }

  function setBalance(id, minor) {
    const node = $(id);
    const value = money(minor);
    if (node.textContent !== value) {
      node.textContent = value;
      node.dataset.minor = String(minor);
      node.classList.remove('flash');
      void node.offsetWidth;
      node.classList.add('flash');
    }
  }

  // The account last asked for: an answer about another (a refresh overtaken by a new lookup) is dropped.
  let requested = null;

  async function lookup(id) {
    text($('account-error'), '');
    if (!id) { return; }
    try {
      const response = await api(`accounts/${encodeURIComponent(id)}`);
      const body = await response.json();
      if (id !== requested) { return; }
      if (!response.ok) {
        $('account').hidden = true;
        watched = null;
        follow(null);
        text($('account-error'), body.detail ?? body.title);
        return;
      }

      if (!watched || watched.id !== body.id || body.version >= watched.version) { showAccount(body); }
    } catch (e) {
      if (id === requested) { text($('account-error'), `The API did not answer: ${e.message}`); }
    }
  }

  /** Looks an account up and follows it from now on (no account: follows none). */
  function choose(id) {
    requested = id || null;
    watched = null;
    follow(requested);
    lookup(requested);
  }

  $('account-form').addEventListener('submit', (e) => {
    e.preventDefault();
    choose($('account-id').value.trim());
  });
  setInterval(() => { if (watched && !document.hidden) { lookup(watched.id); } }, ACCOUNT_REFRESH_MS);

  // A movement of the watched account carries its available balance right after, and its version
  // (a cheap text test first, for a movement between two accounts whose ids contain each other).
  function watch(data) {
    if (!watched || !data.includes(`"${watched.id}"`)) { return; }
    const e = JSON.parse(data);
    const side = e.from === watched.id ? ['from_available', 'from_version'] : e.to === watched.id ? ['to_available', 'to_version'] : null;
    if (!side || e[side[0]] == null || e[side[1]] <= watched.version) { return; }
    watched.version = e[side[1]];
    setBalance('account-available', e[side[0]]);
  }

  // ---- transaction log ----------------------------------------------------------------------
  let pending = [];
  let endedTotal = 0;
  let lastRowsAt = -Infinity; // when a redraw last added rows
  let drawn = false; // the first redraw (the backlog) may fill the whole log

  // Events are kept as text until drawn: only the newest LOG_ROWS of each redraw are ever parsed.
  function onTransfer(data) {
    endedTotal++;
    pending.push(data);
    const keep = drawn ? NEW_ROWS_PER_DRAW : LOG_ROWS;
    if (pending.length > 2 * keep) { pending = pending.slice(-keep); }
  }

  function row(e, flash) {
    const tr = el('tr', flash ? 'new' : null);
    const outcome = e.status === 'committed' ? 'committed' : (e.reason ?? e.status);
    const parties = e.kind === 'deposit' ? `⤓ ${e.to}` : e.kind === 'withdrawal' ? `${e.from} ⤒` : `${e.from} → ${e.to}`;
    tr.append(
      el('td', null, time(e.time)),
      el('td', 'id-cell', e.id),
      el('td', null, parties),
      el('td', 'r', `${money(e.amount)} ${e.currency ?? ''}`),
      el('td', `outcome-${e.status}`, outcome),
      el('td', 'r', `${two.format(e.latency_ms)} ms`),
      el('td', 'muted', e.trace_id ? e.trace_id.slice(0, 12) : '–'));
    tr.title = `${e.kind} ${e.id} on ${e.silo}`;
    return tr;
  }

  setInterval(() => {
    text($('total'), int.format(endedTotal));
    text($('clock'), new Date().toLocaleTimeString('en-GB', { hour12: false }));
    if (pending.length === 0) { return; }
    const body = $('log-body');
    const fragment = document.createDocumentFragment();
    const first = Math.max(0, pending.length - (drawn ? NEW_ROWS_PER_DRAW : LOG_ROWS));
    drawn = true;
    const now = performance.now();
    const flash = pending.length - first <= FLASH_UP_TO && now - lastRowsAt >= FLASH_QUIET_MS;
    lastRowsAt = now;
    for (let i = pending.length - 1; i >= first; i--) { fragment.append(row(JSON.parse(pending[i]), flash)); }
    pending = [];
    body.prepend(fragment);
    while (body.rows.length > LOG_ROWS) { body.deleteRow(-1); }
  }, RENDER_EVERY_MS);

  // ---- streams ------------------------------------------------------------------------------
  stream('events/metrics', {
    metrics: (data) => onMetrics(JSON.parse(data)),
    run: (data) => renderRun(JSON.parse(data)),
  }, (up) => { connection.metrics = up; showConnection(); });

  // The recent movements first; on a reconnect the stream resumes from Last-Event-ID.
  stream(`events/transfers?backlog=${LOG_ROWS}&max_per_second=${LOG_PER_SECOND}`, {
    transfer: onTransfer,
    // A sample: what it leaves out (also what its buffer dropped; it never sends `missed`) is counted here.
    skipped: (data) => { endedTotal += JSON.parse(data).skipped; },
    gap: (data) => {
      const gap = JSON.parse(data);
      text($('log-note'), gap.reason === 'too_old'
        ? `newest first · ${int.format(gap.lost)} movements ended while disconnected and are no longer kept`
        : 'newest first · resumed live; the movements in between are not known here');
    },
  }, (up) => { connection.transfers = up; showConnection(); });
})();
