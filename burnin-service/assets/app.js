// burnin live page: plain JavaScript, no build step. Served by burnin-edge
// (embedded with include_str!). Data: GET /scans, GET /scans/{id}, and the
// Server-Sent Events stream GET /events read with fetch (so the API token
// travels as an Authorization header, never in a URL).
'use strict';
(() => {
  const TOKEN_KEY = 'burnin-api-token';
  const $ = (id) => document.getElementById(id);
  const STATE = {
    waiting: ['\u25CB', 'waiting'],
    replied: ['\u2709', 'replied'],
    passed: ['\u2714', 'passed'],
    failed: ['\u2716', 'failed'],
  };
  const OP_STATE = {
    collecting: 'collecting replies',
    reporting: 'reporting to the factory',
    done: 'done',
    failed: 'failed',
  };
  const running = (s) => s === 'collecting' || s === 'reporting';
  const key = (id) => JSON.stringify(id);
  const pathOf = (id) => (typeof id === 'number' ? String(id) : encodeURIComponent(JSON.stringify(id)));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  class NeedToken extends Error {}

  let token = sessionStorage.getItem(TOKEN_KEY);
  const ops = new Map(); // key -> operation summary (+ lastId)
  let selected = null; // key of the selected operation
  let follow = true; // follow the running operation until the user picks one
  let view = null; // the selected operation: {id, doc, lastId}
  const rows = new Map(); // sn -> {tr, icon, label, host, details, dev}
  const counts = { waiting: 0, replied: 0, passed: 0, failed: 0 };
  let withReply = 0; // devices whose reply is recorded
  let early = []; // events for the selected operation before its snapshot
  const pending = new Map(); // sn -> {device, id}, applied on the next frame
  let frame = 0;
  let lastEventId = null;
  let started = false;
  // For the browser harness: when the selected operation was last shown final.
  window.burninLive = { finalShownAt: {}, events: 0 };

  function setConn(text) {
    $('conn').textContent = text;
  }

  async function api(url, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers.Authorization = 'Bearer ' + token;
    const r = await fetch(url, Object.assign({}, options, { headers }));
    if (r.status === 401) {
      askToken(token ? 'That token was refused; enter the current one.' : '');
      throw new NeedToken();
    }
    return r;
  }

  function askToken(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    $('app').hidden = true;
    $('token-form').hidden = false;
    $('token-error').textContent = message;
    setConn('waiting for the API token');
    $('token').focus();
  }

  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-form').hidden = true;
    start();
  });

  // ---- operations list ----

  function upsertOp(doc, id) {
    const k = key(doc.operationId);
    const old = ops.get(k);
    if (old && id !== undefined && old.lastId >= id) return;
    const merged = Object.assign({}, old || {}, doc);
    delete merged.devices;
    merged.lastId = id !== undefined ? id : (old ? old.lastId : 0);
    ops.set(k, merged);
  }

  function opLabel(o) {
    return 'Operation ' + (typeof o.operationId === 'string' ? '"' + o.operationId + '"' : o.operationId);
  }

  function left(o) {
    const ms = Date.parse(o.deadline) - Date.now();
    return Math.max(0, Math.ceil(ms / 1000));
  }

  function renderLists() {
    const all = [...ops.values()].sort((a, b) => Date.parse(b.started) - Date.parse(a.started));
    const run = all.filter((o) => running(o.state));
    const recent = all.filter((o) => !running(o.state)).slice(0, 20);
    fillList($('running'), run, true);
    fillList($('recent'), recent, false);
    $('running-none').hidden = run.length > 0;
  }

  function fillList(ul, list, withCountdown) {
    ul.replaceChildren(
      ...list.map((o) => {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        const k = key(o.operationId);
        b.setAttribute('aria-current', String(k === selected));
        let text = opLabel(o) + ' \u2014 ' + (OP_STATE[o.state] || o.state);
        if (withCountdown && o.state === 'collecting') text += ', ' + left(o) + ' s left';
        text += ' (' + (o.replies || 0) + (o.expected ? ' of ' + countOf(o.expected) : '') + ' replied)';
        b.textContent = text;
        b.addEventListener('click', () => {
          follow = false;
          select(o.operationId);
        });
        li.append(b);
        return li;
      }),
    );
  }

  const countOf = (e) => (Array.isArray(e) ? e.length : e);

  // ---- the selected operation ----

  async function select(id) {
    const k = key(id);
    selected = k;
    view = null;
    early = [];
    renderLists();
    const r = await api('/scans/' + pathOf(id));
    if (!r.ok) {
      $('op-error').textContent = 'Could not load ' + k + ': HTTP ' + r.status;
      return;
    }
    const doc = await r.json();
    if (selected !== k) return;
    upsertOp(doc, doc.lastEventId);
    view = { id, doc, lastId: doc.lastEventId || 0 };
    renderOperation(doc);
    const queued = early;
    early = [];
    queued.forEach(apply);
  }

  function renderOperation(doc) {
    $('op-title').textContent = opLabel(doc) + ' \u2014 ' + (OP_STATE[doc.state] || doc.state);
    $('op-meta').textContent =
      'Started ' + new Date(doc.started).toLocaleTimeString() +
      ', deadline ' + new Date(doc.deadline).toLocaleTimeString() +
      (doc.finished ? ', finished ' + new Date(doc.finished).toLocaleTimeString() : '') +
      ', target ' + (doc.target || 'pair') + '.';
    $('op-error').textContent = doc.error ? 'Error: ' + doc.error : '';
    rows.clear();
    for (const s of Object.keys(counts)) counts[s] = 0;
    withReply = 0;
    const frag = document.createDocumentFragment();
    for (const d of doc.devices || []) frag.append(makeRow(d, doc.lastEventId || 0));
    $('devices').tBodies[0].replaceChildren(frag);
    renderDeliveries();
    renderSummary();
    tick();
  }

  function makeRow(d, id) {
    const tr = document.createElement('tr');
    const sn = document.createElement('td');
    sn.className = 'sn';
    sn.textContent = d.sn;
    const st = document.createElement('td');
    const icon = document.createElement('span');
    icon.setAttribute('aria-hidden', 'true');
    const label = document.createElement('span');
    st.append(icon, ' ', label);
    const host = document.createElement('td');
    const details = document.createElement('td');
    details.className = 'details';
    tr.append(sn, st, host, details);
    const row = { tr, st, icon, label, host, details, dev: null, id: 0 };
    rows.set(d.sn, row);
    fillRow(row, d, id);
    return tr;
  }

  function fillRow(row, d, id) {
    if (row.dev) {
      counts[row.dev.state]--;
      if (row.dev.hostname) withReply--;
    }
    counts[d.state]++;
    if (d.hostname) withReply++;
    row.dev = d;
    row.id = id;
    const [icon, label] = STATE[d.state] || ['?', d.state];
    row.tr.dataset.state = d.state;
    row.tr.dataset.sn = d.sn;
    row.st.className = 'state state-' + d.state;
    row.icon.textContent = icon;
    row.label.textContent = label + (d.expected === false ? ' (not expected)' : '');
    row.host.textContent = d.hostname || '';
    let text = d.details && d.details.length ? d.details.join('; ') : '';
    if (!text && d.state === 'passed') text = 'every MAC matches MES';
    if (!text && d.state === 'replied') text = 'reply recorded; comparing with MES';
    if (!text && d.state === 'waiting') text = 'no reply yet';
    row.details.textContent = text;
    row.tr.classList.toggle('hidden', $('only-problems').checked && d.state === 'passed');
  }

  function renderSummary() {
    const total = rows.size;
    $('op-summary').textContent =
      total + (total === 1 ? ' device: ' : ' devices: ') + counts.passed + ' passed, ' + counts.failed + ' failed, ' +
      counts.replied + ' replied, ' + counts.waiting + ' waiting.';
    markFinal();
  }

  // Final: every device passed or failed (the results are fixed).
  function markFinal() {
    if (!view || rows.size === 0) return;
    if (counts.waiting + counts.replied === 0) {
      const k = selected;
      if (!(k in window.burninLive.finalShownAt)) {
        requestAnimationFrame(() => {
          window.burninLive.finalShownAt[k] = Date.now();
          document.body.dataset.final = k;
        });
      }
    }
  }

  function renderDeliveries() {
    const o = ops.get(selected);
    const doc = view ? view.doc : null;
    if (!o || !doc) return;
    const kinds = ['log', doc.target === 'directBurn' ? 'directBurn' : 'pair', 'notify'];
    const done = doc.deliveries || [];
    $('deliveries').replaceChildren(
      ...kinds.map((kind) => {
        const li = document.createElement('li');
        const tries = done.filter((d) => d.kind === kind);
        const last = tries[tries.length - 1];
        let text;
        if (!last) {
          text = running(o.state) ? '\u2026 ' + kind + ': not sent yet' : '\u2013 ' + kind + ': not sent';
        } else if (last.ok) {
          text = '\u2714 ' + kind + ': delivered';
        } else {
          text = '\u2716 ' + kind + ': failed \u2014 ' + (last.error || 'unknown error');
        }
        if (tries.length > 1) text += ' (' + tries.length + ' attempts)';
        li.textContent = text;
        return li;
      }),
    );
  }

  function tick() {
    const o = ops.get(selected);
    if (o && o.state === 'collecting') {
      $('op-countdown').textContent = 'Deadline in ' + left(o) + ' s';
    } else {
      $('op-countdown').textContent = '';
    }
    if ([...ops.values()].some((x) => x.state === 'collecting')) renderLists();
  }

  $('only-problems').addEventListener('change', () => {
    const only = $('only-problems').checked;
    for (const r of rows.values()) r.tr.classList.toggle('hidden', only && r.dev.state === 'passed');
  });

  // ---- events ----

  function apply(ev) {
    const k = key(ev.operationId);
    if (ev.type === 'operation') {
      const known = ops.has(k);
      upsertOp(Object.assign({ operationId: ev.operationId }, ev, { type: undefined, id: undefined }), ev.id);
      if (k === selected && view) {
        Object.assign(view.doc, { state: ev.state, error: ev.error, finished: ev.finished });
        $('op-title').textContent = opLabel(view.doc) + ' \u2014 ' + (OP_STATE[ev.state] || ev.state);
        $('op-error').textContent = ev.error ? 'Error: ' + ev.error : '';
        renderDeliveries();
        markFinal();
        tick();
      }
      renderLists();
      // A screen on the floor follows the newest running operation.
      if (!known && follow && running(ev.state) && k !== selected) select(ev.operationId);
      return;
    }
    if (k !== selected) return;
    if (!view) {
      early.push(ev);
      return;
    }
    if (ev.type === 'device') {
      const p = pending.get(ev.device.sn);
      if (!p || p.id < ev.id) pending.set(ev.device.sn, { device: ev.device, id: ev.id });
      if (!frame) frame = requestAnimationFrame(flush);
    } else if (ev.type === 'delivery' && ev.id > view.lastId) {
      view.doc.deliveries = (view.doc.deliveries || []).concat([ev.delivery]);
      renderDeliveries();
    }
  }

  function flush() {
    frame = 0;
    const body = $('devices').tBodies[0];
    let added = null;
    for (const [sn, { device, id }] of pending) {
      const row = rows.get(sn);
      if (row) {
        if (row.id < id) fillRow(row, device, id);
      } else {
        added = added || document.createDocumentFragment();
        added.append(makeRow(device, id));
      }
    }
    pending.clear();
    if (added) body.append(added);
    const o = ops.get(selected);
    if (o && o.replies !== withReply) {
      o.replies = withReply;
      renderLists();
    }
    renderSummary();
  }

  function handleBlock(block) {
    let id = null;
    let event = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const at = line.indexOf(':');
      const field = at < 0 ? line : line.slice(0, at);
      let value = at < 0 ? '' : line.slice(at + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (id !== null && id !== '') lastEventId = id;
    if (!data.length) return;
    const doc = JSON.parse(data.join('\n'));
    window.burninLive.events++;
    if (event === 'hello') {
      if (lastEventId === null) lastEventId = String(doc.lastEventId);
      if (helloResolve) helloResolve(true);
    } else if (event === 'reset') {
      // Events were missed (the replay buffer is bounded): read afresh.
      lastEventId = String(doc.lastEventId);
      loadAll();
    } else {
      apply(doc);
    }
  }

  async function stream() {
    let delay = 500;
    for (;;) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
        const r = await api('/events', { headers });
        if (!r.ok) throw new Error('HTTP ' + r.status);
        setConn('live');
        delay = 500;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            handleBlock(block);
          }
        }
      } catch (e) {
        if (e instanceof NeedToken) {
          if (helloResolve) helloResolve(false);
          return;
        }
      }
      setConn('connection lost; reconnecting\u2026');
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  async function loadAll() {
    const r = await api('/scans?limit=50');
    if (!r.ok) throw new Error('GET /scans: HTTP ' + r.status);
    const list = await r.json();
    for (const doc of list) upsertOp(doc, doc.lastEventId);
    renderLists();
    let pick = null;
    if (selected && ops.has(selected)) pick = ops.get(selected).operationId;
    if (follow || pick === null) {
      const run = list.filter((o) => running(o.state));
      const chosen = run[0] || list[0];
      if (chosen) pick = chosen.operationId;
    }
    if (pick !== null) await select(pick);
  }

  // ---- find a serial ----

  $('find-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const q = $('find').value.trim();
    const out = $('find-results');
    out.replaceChildren();
    if (!q) return;
    const r = await api('/devices/' + encodeURIComponent(q));
    if (!r.ok) {
      out.textContent = 'Search failed: HTTP ' + r.status;
      return;
    }
    const hits = await r.json();
    if (!hits.length) {
      const li = document.createElement('li');
      li.textContent = 'No operation has serial ' + q + '.';
      out.append(li);
      return;
    }
    for (const h of hits) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      const [, label] = STATE[h.device.state] || ['', h.device.state];
      b.textContent = opLabel(h) + ': ' + h.device.sn + ' ' + label;
      b.addEventListener('click', async () => {
        follow = false;
        await select(h.operationId);
        const row = rows.get(h.device.sn);
        if (row) {
          row.tr.scrollIntoView({ block: 'center' });
          row.tr.cells[0].setAttribute('tabindex', '-1');
          row.tr.cells[0].focus();
        }
      });
      li.append(b);
      out.append(li);
    }
  });

  let helloResolve = null;

  // The stream first (its hello names the current event id), then the
  // snapshots: an event after the hello is either in a snapshot (its id is
  // not newer than the snapshot's lastEventId, and is skipped) or applied.
  async function start() {
    if (started) return;
    setConn('connecting\u2026');
    const hello = new Promise((resolve) => {
      helloResolve = resolve;
    });
    stream();
    if (!(await hello)) return;
    helloResolve = null;
    for (;;) {
      try {
        await loadAll();
        break;
      } catch (e) {
        if (e instanceof NeedToken) return;
        setConn('cannot read the operations: ' + e.message + '; trying again');
        await sleep(2000);
      }
    }
    started = true;
    $('app').hidden = false;
    setInterval(tick, 1000);
  }

  start();
})();
