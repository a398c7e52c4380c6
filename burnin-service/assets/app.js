// burnin live page: plain JavaScript, no build step. Served by burnin-edge
// (embedded with include_str!). Data: GET /scans, GET /scans/{id}, and the
// Server-Sent Events stream GET /events read with fetch (so the API token
// travels as an Authorization header, never in a URL).
//
// Everything a device sends (serials, host names, interface names, reasons,
// LLDP names in its location) is put into the page as text: textContent and
// attributes only, never innerHTML.
//
// The room (SPEC §11.2): one tile per device, grouped by switch
// (location.switch; devices without a location under "unplaced"), ordered by
// port in natural order (swp2 before swp10), coloured by state with its icon
// and word. A tile opens a dialog with the serial, location and reasons.
// URL parameters: ?only=failed|problems|waiting|undecided|passed filters the
// tiles and the table; ?wall=1 is large type for a wall screen.
'use strict';
(() => {
  const TOKEN_KEY = 'burnin-api-token';
  const $ = (id) => document.getElementById(id);
  const STATE = {
    waiting: ['\u25CB', 'waiting'],
    replied: ['\u2709', 'replied'],
    passed: ['\u2714', 'passed'],
    failed: ['\u2716', 'failed'],
    undecided: ['?', 'undecided'],
  };
  // Which devices a filter (?only=…) shows.
  const FILTERS = {
    '': () => true,
    failed: (s) => s === 'failed',
    problems: (s) => s !== 'passed',
    waiting: (s) => s === 'waiting',
    undecided: (s) => s === 'undecided',
    passed: (s) => s === 'passed',
  };
  const params = new URLSearchParams(location.search);
  const wall = params.get('wall') === '1';
  let only = params.get('only') || '';
  if (!(only in FILTERS)) only = '';
  const shows = (state) => FILTERS[only](state);
  const natural = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
  // Failed first in the table, then undecided, then the rest as they came.
  const RANK = { failed: 0, undecided: 1 };
  const rankOf = (s) => (s in RANK ? RANK[s] : 2);
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

  // The token is kept in memory, and in localStorage only when the user
  // ticks "remember on this screen".
  let token = localStorage.getItem(TOKEN_KEY);
  const ops = new Map(); // key -> operation summary (+ lastId)
  let selected = null; // key of the selected operation
  let follow = true; // follow the running operation until the user picks one
  let view = null; // the selected operation: {id, doc, lastId}
  const rows = new Map(); // sn -> {tr, icon, label, loc, host, details, tile, dev, id, order}
  const counts = { waiting: 0, replied: 0, passed: 0, failed: 0, undecided: 0 };
  let withReply = 0; // devices whose reply is recorded
  let expectedReplied = 0; // of them, the ones the operation expected
  let expectedTotal = 0; // devices the operation expected
  let order = 0; // arrival order of rows, for a stable table order
  let roomDirty = false; // a tile changed group or place: lay the room out again
  const moved = new Set(); // rows whose place in the table changed (or new ones)
  const groups = new Map(); // switch name ('' = unplaced) -> {section, title, ul}
  let opened = null; // the sn shown in the details dialog
  let openedFrom = null; // the tile to give the focus back to
  let early = []; // events for the selected operation before its snapshot
  const pending = new Map(); // sn -> {device, id}, applied on the next frame
  let frame = 0;
  let lastEventId = null;
  let started = false;
  // For the browser harness: when the selected operation was last shown final.
  window.burninLive = { finalShownAt: {}, events: 0, lastDeviceEventAt: 0 };

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
    localStorage.removeItem(TOKEN_KEY);
    $('forget').hidden = true;
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
    if ($('remember').checked) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
    $('forget').hidden = !$('remember').checked;
    $('token-form').hidden = true;
    start();
  });

  $('forget').hidden = !token;
  $('forget').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    token = null;
    location.reload();
  });

  // ---- operations list ----

  // Per operation, the serials that replied: expected ones and the others
  // apart, from its snapshot and its device events (a reply stays a reply).
  const tallies = new Map(); // key -> {expected: Set, others: Set}
  function tally(k, d) {
    if (!repliedOf(d)) return;
    let t = tallies.get(k);
    if (!t) tallies.set(k, (t = { expected: new Set(), others: new Set() }));
    (d.expected === false ? t.others : t.expected).add(String(d.sn));
  }

  function upsertOp(doc, id) {
    const k = key(doc.operationId);
    for (const d of doc.devices || []) tally(k, d);
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
        text += ' (' + repliesText(o, k) + ')';
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

  // Replies in words. The selected operation's come from its devices: of
  // the expected ones, how many replied, and apart from them those nobody
  // expected (never counted against the expected total). Another
  // operation's come from its summary, whose `replies` counts both.
  function replyWords(replied, expected, others) {
    if (!expected) return others + ' replied (none expected)';
    let t = replied + ' of ' + expected + ' expected replied';
    if (others > 0) t += ', ' + others + ' not expected';
    return t;
  }

  function repliesText(o, k) {
    if (k === selected && view) return replyWords(expectedReplied, expectedTotal, withReply - expectedReplied);
    const e = countOf(o.expected || 0);
    const t = tallies.get(k);
    if (t) return replyWords(t.expected.size, e, t.others.size);
    const n = o.replies || 0;
    return n + (n === 1 ? ' reply' : ' replies') + (e ? ', ' + e + ' expected' : '');
  }

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
    expectedReplied = 0;
    expectedTotal = 0;
    order = 0;
    groups.clear();
    $('room').replaceChildren();
    closeDetails();
    const frag = document.createDocumentFragment();
    for (const d of doc.devices || []) frag.append(makeRow(d, doc.lastEventId || 0));
    $('devices').tBodies[0].replaceChildren(frag);
    sortTable();
    layoutRoom();
    renderDeliveries();
    renderSummary();
    renderLists();
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
    const loc = document.createElement('td');
    loc.className = 'loc';
    loc.dataset.label = 'Location';
    const host = document.createElement('td');
    host.className = 'host';
    host.dataset.label = 'Host';
    const details = document.createElement('td');
    details.className = 'details';
    tr.append(sn, st, loc, host, details);
    const tile = makeTile(d.sn);
    const row = { tr, st, icon, label, loc, host, details, tile, dev: null, id: 0, order: order++, group: null, port: null };
    rows.set(d.sn, row);
    fillRow(row, d, id);
    moved.add(row);
    roomDirty = true;
    return tr;
  }

  function makeTile(sn) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'tile';
    b.dataset.sn = sn;
    const top = document.createElement('span');
    top.className = 't-top';
    const snEl = document.createElement('span');
    snEl.className = 't-sn';
    snEl.textContent = sn;
    b.append(top, snEl);
    // A button: Enter and Space open it, like a click.
    b.addEventListener('click', () => openDetails(sn, b));
    li.append(b);
    return { li, b, top };
  }

  // location: {place, switch, port, planned} or absent.
  const locOf = (d) => (d.location && typeof d.location === 'object' ? d.location : null);
  const str = (v) => (v === null || v === undefined ? '' : String(v));

  function placeText(l) {
    if (!l) return '';
    const where = [str(l.switch), str(l.port)].filter(Boolean).join(' ');
    let t = str(l.place);
    if (where) t += (t ? ' \u2014 ' : '') + where;
    if (l.planned) t += ' (planned)';
    return t;
  }

  const repliedOf = (d) => Boolean(d.hostname) || d.state === 'replied';

  function fillRow(row, d, id) {
    if (row.dev) {
      counts[row.dev.state]--;
      if (repliedOf(row.dev)) {
        withReply--;
        if (row.dev.expected !== false) expectedReplied--;
      }
      if (row.dev.expected !== false) expectedTotal--;
      if (rankOf(row.dev.state) !== rankOf(d.state)) moved.add(row);
    }
    counts[d.state] = (counts[d.state] || 0) + 1;
    if (repliedOf(d)) {
      withReply++;
      if (d.expected !== false) expectedReplied++;
    }
    if (d.expected !== false) expectedTotal++;
    row.dev = d;
    row.id = id;
    row.tr._rank = rankOf(d.state);
    row.tr._order = row.order;
    const [icon, label] = STATE[d.state] || ['?', str(d.state)];
    row.tr.dataset.state = d.state;
    row.tr.dataset.sn = d.sn;
    row.st.className = 'state state-' + d.state;
    row.icon.textContent = icon;
    row.label.textContent = label + (d.expected === false ? ' (not expected)' : '');
    const l = locOf(d);
    row.loc.textContent = placeText(l);
    row.host.textContent = str(d.hostname);
    row.details.textContent = detailsText(d);
    row.tr.classList.toggle('hidden', !shows(d.state));
    // The tile: its group and place, its state.
    const group = l && l.switch ? str(l.switch) : '';
    const port = l && l.port ? str(l.port) : '';
    if (group !== row.group || port !== row.port) {
      row.group = group;
      row.port = port;
      roomDirty = true;
    }
    const t = row.tile;
    t.b.className = 'tile s-' + d.state;
    t.b.dataset.state = d.state;
    t.top.textContent = icon + ' ' + (port || label);
    t.b.setAttribute(
      'aria-label',
      d.sn + ', ' + label + (l ? ', ' + placeText(l) : ', unplaced') + (d.expected === false ? ', not expected' : ''),
    );
    t.li.hidden = !shows(d.state);
    if (opened === d.sn) fillDetails(d);
  }

  function detailsText(d) {
    let text = d.details && d.details.length ? d.details.join('; ') : '';
    if (!text && d.state === 'passed') text = 'every MAC matches MES';
    if (!text && d.state === 'replied') text = 'reply recorded; comparing with MES';
    if (!text && d.state === 'waiting') text = 'no reply yet';
    return text;
  }

  // Table rows: failed first (then undecided), each group in arrival order.
  function sortTable() {
    moved.clear();
    const all = [...rows.values()];
    all.sort((a, b) => rankOf(a.dev.state) - rankOf(b.dev.state) || a.order - b.order);
    const body = $('devices').tBodies[0];
    const frag = document.createDocumentFragment();
    for (const r of all) frag.append(r.tr);
    body.replaceChildren(frag);
  }

  // Puts one row (out of the table) in its place in the sorted table: before
  // the first row that comes after it, found by bisection. Cheap per row, so
  // a frame with many new verdicts does not move every row.
  function placeRow(body, r) {
    const tr = r.tr;
    const list = body.rows;
    const after = (x) => x._rank > tr._rank || (x._rank === tr._rank && x._order > tr._order);
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (after(list[mid])) hi = mid;
      else lo = mid + 1;
    }
    body.insertBefore(tr, lo < list.length ? list[lo] : null);
  }

  // Groups by switch in natural order, "unplaced" last; tiles by port in
  // natural order, then serial.
  function layoutRoom() {
    roomDirty = false;
    const by = new Map();
    for (const r of rows.values()) {
      if (!by.has(r.group)) by.set(r.group, []);
      by.get(r.group).push(r);
    }
    const names = [...by.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : natural.compare(a, b)));
    const sections = [];
    for (const name of names) {
      let g = groups.get(name);
      if (!g) {
        const section = document.createElement('section');
        section.className = 'switch';
        section.dataset.switch = name;
        const title = document.createElement('h4');
        const ul = document.createElement('ul');
        ul.className = 'tiles';
        section.append(title, ul);
        g = { section, title, ul, count: null, total: 0 };
        groups.set(name, g);
      }
      const list = by.get(name);
      list.sort((a, b) => natural.compare(a.port, b.port) || natural.compare(String(a.dev.sn), String(b.dev.sn)));
      g.title.textContent = (name === '' ? 'unplaced' : 'switch ' + name) + ' ';
      g.count = document.createElement('span');
      g.count.className = 'muted';
      g.total = list.length;
      g.title.append(g.count);
      const frag = document.createDocumentFragment();
      for (const r of list) frag.append(r.tile.li);
      g.ul.replaceChildren(frag);
      sections.push(g.section);
    }
    for (const name of [...groups.keys()]) if (!by.has(name)) groups.delete(name);
    $('room').replaceChildren(...sections);
    hideEmptyGroups();
  }

  // Groups with nothing to show are hidden; a filtered group says how many
  // of its devices are shown.
  function hideEmptyGroups() {
    for (const g of groups.values()) {
      let shown = 0;
      for (const li of g.ul.children) if (!li.hidden) shown++;
      g.section.hidden = shown === 0;
      const all = g.total + (g.total === 1 ? ' device' : ' devices');
      g.count.textContent = '(' + (shown === g.total ? all : shown + ' of ' + all + ' shown') + ')';
    }
  }

  // ---- the details of one device ----

  function openDetails(sn, from) {
    const row = rows.get(sn);
    if (!row) return;
    opened = sn;
    openedFrom = from || null;
    fillDetails(row.dev);
    const dlg = $('device-dialog');
    if (!dlg.open) dlg.showModal();
    $('dd-close').focus();
  }

  function fillDetails(d) {
    const l = locOf(d);
    $('dd-title').textContent = d.sn;
    const [icon, label] = STATE[d.state] || ['?', str(d.state)];
    $('dd-state').textContent = icon + ' ' + label + (d.expected === false ? ' (not expected)' : '');
    $('dd-state').className = 'state state-' + d.state;
    $('dd-place').replaceChildren();
    if (l && l.place) {
      $('dd-place').append(str(l.place));
      if (l.planned) {
        const p = document.createElement('span');
        p.className = 'planned';
        p.textContent = ' (planned: from the cabling plan, no LLDP neighbour confirms it)';
        $('dd-place').append(p);
      }
    } else {
      $('dd-place').textContent = 'unknown (unplaced)';
    }
    $('dd-port').textContent = l && (l.switch || l.port) ? [str(l.switch), str(l.port)].filter(Boolean).join(' ') : 'unknown';
    $('dd-host').textContent = str(d.hostname) || '\u2013';
    const reasons = d.details && d.details.length ? d.details : [detailsText(d)];
    $('dd-reasons').replaceChildren(
      ...reasons.map((r) => {
        const li = document.createElement('li');
        li.textContent = str(r);
        return li;
      }),
    );
  }

  function closeDetails() {
    const dlg = $('device-dialog');
    if (dlg.open) dlg.close();
  }

  $('dd-close').addEventListener('click', closeDetails);
  // Escape closes a modal dialog by itself; either way the focus goes back.
  $('device-dialog').addEventListener('close', () => {
    opened = null;
    const from = openedFrom;
    openedFrom = null;
    if (from && from.isConnected) from.focus();
  });

  function renderSummary() {
    const total = rows.size;
    $('op-summary').textContent =
      total + (total === 1 ? ' device: ' : ' devices: ') + counts.passed + ' passed, ' + counts.failed + ' failed, ' +
      (counts.undecided ? counts.undecided + ' undecided, ' : '') +
      counts.replied + ' replied, ' + counts.waiting + ' waiting.';
    $('op-replies').textContent = view ? 'Replies: ' + repliesText(ops.get(selected) || {}, selected) + '.' : '';
    renderCounts(total);
    markFinal();
  }

  function renderCounts(total) {
    const shown = ['failed', 'undecided', 'waiting', 'replied', 'passed'].filter((s) => counts[s] || s === 'failed' || s === 'passed');
    $('counts').replaceChildren(
      ...shown.map((s) => {
        const span = document.createElement('span');
        span.className = 'count s-' + s;
        span.dataset.state = s;
        const n = document.createElement('span');
        n.className = 'n';
        n.textContent = String(counts[s]);
        span.append(n, ' ' + STATE[s][0] + ' ' + STATE[s][1]);
        return span;
      }),
    );
    const pct = (n) => (total ? (100 * n) / total : 0);
    const bar = $('progress');
    bar.querySelector('.bar-passed').style.width = pct(counts.passed) + '%';
    bar.querySelector('.bar-failed').style.width = pct(counts.failed) + '%';
    bar.querySelector('.bar-undecided').style.width = pct(counts.undecided) + '%';
    const decided = counts.passed + counts.failed + counts.undecided;
    bar.setAttribute('aria-valuenow', String(Math.round(pct(decided))));
    bar.setAttribute('aria-valuetext', decided + ' of ' + total + ' devices have a verdict');
    bar.title = decided + ' of ' + total + ' devices have a verdict';
  }

  // Final: every device passed or failed (the results are fixed).
  function markFinal() {
    if (!view || rows.size === 0) return;
    if (counts.waiting + counts.replied === 0 && pending.size === 0) {
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

  // The filter lives in the URL, so a wall screen can open ?only=failed.
  $('only').value = only;
  $('only').addEventListener('change', () => {
    only = $('only').value in FILTERS ? $('only').value : '';
    const u = new URL(location.href);
    if (only) u.searchParams.set('only', only);
    else u.searchParams.delete('only');
    history.replaceState(null, '', u);
    for (const r of rows.values()) {
      r.tr.classList.toggle('hidden', !shows(r.dev.state));
      r.tile.li.hidden = !shows(r.dev.state);
    }
    hideEmptyGroups();
  });
  if (wall) document.body.classList.add('wall');

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
    if (ev.type === 'device') tally(k, ev.device);
    if (k !== selected) return;
    if (!view) {
      early.push(ev);
      return;
    }
    if (ev.type === 'device') {
      window.burninLive.lastDeviceEventAt = Date.now();
      const p = pending.get(ev.device.sn);
      if (!p || p.id < ev.id) pending.set(ev.device.sn, { device: ev.device, id: ev.id });
      if (!frame) frame = requestAnimationFrame(flush);
    } else if (ev.type === 'delivery' && ev.id > view.lastId) {
      view.doc.deliveries = (view.doc.deliveries || []).concat([ev.delivery]);
      renderDeliveries();
    }
  }

  function flush() {
    const t0 = performance.now();
    frame = 0;
    const body = $('devices').tBodies[0];
    for (const [sn, { device, id }] of pending) {
      const row = rows.get(sn);
      if (row) {
        if (row.id < id) fillRow(row, device, id);
      } else {
        makeRow(device, id); // placed below with the moved rows
      }
    }
    pending.clear();
    // Out first, so the rows left are in order; then each in its place.
    for (const r of moved) if (r.tr.parentNode === body) body.removeChild(r.tr);
    for (const r of moved) placeRow(body, r);
    moved.clear();
    if (roomDirty) layoutRoom();
    else hideEmptyGroups();
    const o = ops.get(selected);
    if (o && o.replies !== withReply) {
      o.replies = withReply;
    }
    renderLists();
    renderSummary();
    const ms = performance.now() - t0;
    const live = window.burninLive;
    live.flushes = (live.flushes || 0) + 1;
    live.flushMs = (live.flushMs || 0) + ms;
    live.flushMaxMs = Math.max(live.flushMaxMs || 0, ms);
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
