/* The live sale page: polls GET /v1/dashboard about once a second with the
 * operator's admin token (kept in this tab's sessionStorage, never in the
 * URL) and draws what it says. No other request leaves the page. */
'use strict';

const KEY = 'coupon-admin-token';
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);
const charts = new Map(); /* campaign id -> Chart; 'answers' -> the endpoint's chart */
let timer = null;
let polls = 0;

function token() { return sessionStorage.getItem(KEY); }

function showLogin(message) {
  clearTimeout(timer);
  timer = null;
  sessionStorage.removeItem(KEY);
  $('board').hidden = true;
  $('status').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').value = '';
  $('token').focus();
}

function showBoard() {
  $('login').hidden = true;
  $('board').hidden = false;
  $('status').hidden = false;
}

function num(v) { return v === null || v === undefined ? '–' : Number(v).toLocaleString('en-US'); }

function chip(id, state) {
  const el = $(id);
  el.className = 'chip ' + (state === 'up' ? 'up' : 'down');
  el.textContent = id.replace('chip-', '') + ' ' + state;
}

function timeLabel(ms) { return new Date(ms).toISOString().substring(11, 19); }

function lineChart(canvas, series) {
  return new Chart(canvas, {
    type: 'line',
    data: { labels: [], datasets: series.map(([label, color]) => ({
      label, borderColor: color, backgroundColor: color, data: [], pointRadius: 0, borderWidth: 2, tension: 0.2 })) },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: 'index', intersect: false },
      scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
    },
  });
}

function renderAnswers(h) {
  let c = charts.get('answers');
  if (!c) {
    c = lineChart($('answers-chart'), [['202 issued', '#1f9d55'], ['409 already issued', '#3b6fd8'],
      ['410 sold out', '#c98a00'], ['other 4xx', '#8a63d2'], ['5xx', '#d64545']]);
    charts.set('answers', c);
  }
  c.data.labels = h.t.map(timeLabel);
  ['issued', 'already_issued', 'sold_out', 'other_4xx', 'errors_5xx'].forEach((k, i) => { c.data.datasets[i].data = h[k]; });
  c.update('none');
}

function setField(card, name, value, alert) {
  const el = card.querySelector('[data-f="' + name + '"]');
  el.textContent = typeof value === 'string' ? value : num(value);
  el.classList.toggle('alert', !!alert);
}

function renderCampaign(c, d, labels) {
  let card = document.querySelector('.campaign[data-id="' + c.id + '"]');
  if (!card) {
    card = $('campaign-card').content.firstElementChild.cloneNode(true);
    card.dataset.id = c.id;
    $('campaigns').appendChild(card);
    charts.set(c.id, lineChart(card.querySelector('canvas'), [['issued per second', '#3b6fd8']]));
  }
  const unpersisted = c.persisted === null ? null : Math.max(0, c.issued - c.persisted);
  setField(card, 'name', c.name);
  setField(card, 'id', c.id);
  setField(card, 'state', c.paused ? 'paused' : c.state.replace('_', ' '));
  card.querySelector('[data-f="state"]').className = 'state ' + c.state;
  setField(card, 'issued', c.issued);
  setField(card, 'total', c.total);
  setField(card, 'remaining', c.remaining);
  setField(card, 'persisted', c.persisted);
  setField(card, 'unpersisted', unpersisted);
  setField(card, 'outbox_backlog', c.outbox_backlog, c.outbox_backlog > 0);
  setField(card, 'failed_open', c.failed_open, c.failed_open > 0);
  setField(card, 'failed_dead', c.failed_dead, c.failed_dead > 0);
  setField(card, 'lag', d.process.consumer_lag);
  card.querySelector('.fill').style.width = (c.total ? Math.min(100, 100 * c.issued / c.total) : 0) + '%';
  const chart = charts.get(c.id);
  chart.data.labels = labels.slice(labels.length - c.issued_per_s.length);
  chart.data.datasets[0].data = c.issued_per_s;
  chart.update('none');
}

function renderTypes(t) {
  $('t-outbox').textContent = num(t.outbox_backlog);
  $('t-failed-open').textContent = num(t.failed_open);
  $('t-failed-dead').textContent = num(t.failed_dead);
  $('t-paid').textContent = num(t.payments.paid);
  $('t-declined').textContent = num(t.payments.declined);
  $('t-late').textContent = num(t.payments.hold_expired);
  $('t-unknown').textContent = num(t.payments.unknown);
  $('t-expired').textContent = num(t.expired_by_this_process);
  $('no-types').hidden = t.types.length > 0;
  $('types').hidden = t.types.length === 0;
  const body = $('types').tBodies[0];
  body.replaceChildren(...t.types.map((ty) => {
    const tr = document.createElement('tr');
    tr.dataset.id = ty.id;
    [ty.name + ' (' + ty.id + ')', ty.state.replace('_', ' '), ty.total, ty.available, ty.held, ty.sold,
      ty.confirmed, ty.expired, ty.refunded, ty.payments_in_flight].forEach((v, i) => {
      const td = document.createElement('td');
      td.textContent = typeof v === 'string' ? v : num(v);
      if (i > 1) td.dataset.f = ['total', 'available', 'held', 'sold', 'confirmed', 'expired', 'refunded', 'paying'][i - 2];
      tr.appendChild(td);
    });
    return tr;
  }));
}

function render(d) {
  const p = d.process;
  chip('chip-redis', p.redis_pipe);
  chip('chip-mysql', p.mysql);
  chip('chip-kafka', p.kafka);
  $('p50').textContent = p.issue_p50_ms === null ? '–' : p.issue_p50_ms.toFixed(1);
  $('p99').textContent = p.issue_p99_ms === null ? '–' : p.issue_p99_ms.toFixed(1);
  $('rate').textContent = num(Math.round(p.issued_per_s));
  $('kqueue').textContent = num(p.kafka_queue);
  $('lag').textContent = num(p.consumer_lag);
  $('updated').textContent = 'updated ' + (d.now ? d.now.substring(11, 19) : '');
  document.body.dataset.now = d.now;
  document.body.dataset.polls = String(++polls);
  $('problems').hidden = d.errors.length === 0;
  $('problems').textContent = d.errors.length ? 'Not read this second: ' + d.errors.join('; ') : '';
  renderAnswers(d.history);
  const labels = d.history.t.map(timeLabel);
  const shown = new Set(d.campaigns.map((c) => c.id));
  document.querySelectorAll('.campaign').forEach((card) => {
    if (!shown.has(card.dataset.id)) {
      charts.get(card.dataset.id).destroy();
      charts.delete(card.dataset.id);
      card.remove();
    }
  });
  d.campaigns.forEach((c) => renderCampaign(c, d, labels));
  $('no-campaigns').hidden = d.campaigns.length > 0;
  renderTypes(d.tickets);
}

async function poll() {
  const t = token();
  if (!t) { showLogin(''); return; }
  try {
    const r = await fetch('/v1/dashboard', { headers: { Authorization: 'Bearer ' + t }, cache: 'no-store' });
    if (r.status === 401) { showLogin('That token was refused.'); return; }
    const body = await r.json();
    if (!r.ok) {
      showBoard();
      $('problems').hidden = false;
      $('problems').textContent = (body.error && body.error.message) || ('HTTP ' + r.status);
    } else {
      showBoard();
      render(body);
    }
  } catch (e) {
    $('problems').hidden = false;
    $('problems').textContent = 'coupon-api is not answering (' + e.message + ')';
  }
  if (token()) timer = setTimeout(poll, POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $('token').value);
    $('login-error').textContent = '';
    clearTimeout(timer);
    poll();
  });
  $('logout').addEventListener('click', () => showLogin(''));
  if (token()) poll(); else showLogin('');
});
