// hookstream dashboard: progressive enhancement only. Every page works
// without this script; with it, times show in the viewer's local time (UTC
// on hover), the DLQ time filter takes local times, forms that change a lot
// ask first, and replay progress updates in place.
(function () {
  'use strict';

  function pad(n) { return String(n).padStart(2, '0'); }

  function zoneName(d) {
    try {
      var parts = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' }).formatToParts(d);
      for (var i = 0; i < parts.length; i++) {
        if (parts[i].type === 'timeZoneName') { return ' ' + parts[i].value; }
      }
    } catch (e) { /* an old browser: no zone name */ }
    return '';
  }

  function localValue(d) {
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function localText(d) { return localValue(d).replace('T', ' ') + zoneName(d); }

  function utcText(d) { return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'); }

  function localize(root) {
    root.querySelectorAll('time[datetime]').forEach(function (el) {
      var d = new Date(el.getAttribute('datetime'));
      if (isNaN(d)) { return; }
      el.textContent = localText(d);
      el.title = utcText(d);
    });
  }

  function badge(state) {
    var s = document.createElement('span');
    s.className = 'badge b-' + String(state).replace(/[^a-z_]/g, '');
    s.textContent = String(state).replace(/_/g, ' ');
    return s;
  }

  // poll fetches url every second (backing off on errors) and hands the
  // JSON to onData until it returns false.
  function poll(url, onData) {
    function tick() {
      fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (j) { if (onData(j)) { setTimeout(tick, 1000); } })
        .catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 1000);
  }

  localize(document);

  // The DLQ filter: inputs show local time; the form sends UTC.
  document.querySelectorAll('form[data-times]').forEach(function (form) {
    form.querySelectorAll('.tz').forEach(function (s) { s.textContent = '(local time)'; });
    function hiddenFor(input) { return form.querySelector('input[type=hidden][name="' + input.dataset.utc + '"]'); }
    form.querySelectorAll('input[data-utc]').forEach(function (input) {
      var hidden = hiddenFor(input);
      var d = hidden && hidden.value ? new Date(hidden.value) : null;
      if (d && !isNaN(d)) { input.value = localValue(d); }
    });
    form.addEventListener('submit', function () {
      form.querySelectorAll('input[data-utc]').forEach(function (input) {
        var hidden = hiddenFor(input);
        var d = input.value ? new Date(input.value) : null;
        if (hidden) { hidden.value = d && !isNaN(d) ? d.toISOString().replace(/\.\d+Z$/, 'Z') : ''; }
        input.disabled = true; // only the UTC value is sent
      });
      // Leave empty fields out of the URL.
      form.querySelectorAll('input[name], select[name]').forEach(function (el) {
        if (!el.value) { el.disabled = true; }
      });
    });
  });
  // Coming back to the page (the back button) must find the form usable.
  window.addEventListener('pageshow', function () {
    document.querySelectorAll('form[data-times] [disabled]').forEach(function (el) { el.disabled = false; });
  });

  document.addEventListener('submit', function (e) {
    var msg = e.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  }, true);

  // A bulk replay's progress.
  var job = document.querySelector('[data-job]');
  if (job) {
    poll(job.dataset.job, function (j) {
      job.querySelectorAll('[data-field]').forEach(function (el) {
        var k = el.dataset.field;
        if (k === 'updated_at') {
          el.replaceChildren(Object.assign(document.createElement('time'), { dateTime: j.updated_at }));
          localize(el);
        } else if (j[k] !== undefined) {
          el.textContent = j[k];
        }
      });
      var bar = document.getElementById('job-progress');
      if (bar) { bar.max = j.matched; bar.value = j.replayed + j.skipped + j.failed; }
      var st = document.getElementById('job-state');
      if (st) { st.replaceChildren(badge(j.state)); }
      return j.state === 'running';
    });
  }

  // A replayed record: reload once its state settles.
  var watched = document.querySelector('[data-watch]');
  if (watched) {
    poll(watched.dataset.watch, function (r) {
      if (r.state !== watched.dataset.while) { window.location.replace(window.location.pathname); return false; }
      return true;
    });
  }
})();
