/**
 * The dashboard's script (`GET /ui/app.js`), plain ES2017 for any current browser, no build step.
 * It reads event streams with `fetch` rather than `EventSource`, for two things `EventSource`
 * cannot do: send the pasted token as `Authorization: Bearer` (so nothing is stored in a cookie,
 * and what the page shows is exactly what that token may see), and show the status and text of
 * a refusal (401, 403, 429). Cookies are never sent (`credentials: "omit"`). Tokens stay in the
 * page's fields: nothing is saved.
 *
 * Kept in a raw string: the browser code must use no backtick and no dollar-brace.
 */
export const dashboardScript = String.raw`'use strict';
(function () {
  var POINTS = 120;
  var LIST = 50;
  var $ = function (id) { return document.getElementById(id); };
  var SPARKS = ['connections', 'topics', 'publishRate', 'deliveryRate', 'evicted', 'resets'];
  var series = {};
  SPARKS.forEach(function (name) { series[name] = []; });
  var previous;
  var recent = [];
  var WINDOW = 5000;

  function setStatus(element, state, text) {
    element.dataset.state = state;
    element.textContent = text;
  }

  /** Reads one event stream: handlers open, event({type, data, id}), refused(status, text), end, failed(error). */
  function openStream(url, token, handlers) {
    var controller = new AbortController();
    var headers = { accept: 'text/event-stream' };
    if (token) headers.authorization = 'Bearer ' + token;
    fetch(url, { headers: headers, cache: 'no-store', credentials: 'omit', signal: controller.signal })
      .then(function (response) {
        if (!response.ok) {
          return response.text().then(function (text) { handlers.refused(response.status, text.trim()); });
        }
        handlers.open();
        return readEvents(response.body, handlers.event).then(function () { handlers.end(); });
      })
      .catch(function (error) { if (!controller.signal.aborted) handlers.failed(error); });
    return { close: function () { controller.abort(); } };
  }

  /** The text/event-stream format, as the WHATWG spec parses it. */
  function readEvents(body, onEvent) {
    var reader = body.pipeThrough(new TextDecoderStream()).getReader();
    var buffer = '';
    var data = [];
    var type = '';
    var id = '';
    function line(text) {
      if (text === '') {
        if (data.length > 0) onEvent({ type: type || 'message', data: data.join('\n'), id: id });
        data = [];
        type = '';
        id = '';
        return;
      }
      if (text.charAt(0) === ':') return;
      var colon = text.indexOf(':');
      var field = colon === -1 ? text : text.slice(0, colon);
      var value = colon === -1 ? '' : text.slice(colon + 1);
      if (value.charAt(0) === ' ') value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id' && value.indexOf('\0') === -1) id = value;
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return undefined;
        buffer += chunk.value;
        var match;
        while ((match = /\r\n|\r|\n/.exec(buffer)) !== null) {
          // A CR at the very end may be the first half of a CRLF.
          if (match[0] === '\r' && match.index === buffer.length - 1) break;
          line(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
        }
        return pump();
      });
    }
    return pump();
  }

  // The figures.
  function format(value) {
    if (typeof value !== 'number') return String(value);
    if (value !== Math.round(value)) return value < 10 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US');
    return value.toLocaleString('en-US');
  }

  function draw(name) {
    var svg = document.querySelector('[data-spark="' + name + '"] polyline');
    if (!svg) return;
    var values = series[name];
    var max = Math.max.apply(null, values.concat([1]));
    // Stretched over the width until the plot holds a full minute or two (POINTS), then scrolling.
    var span = Math.max(values.length, 20);
    var step = 120 / (span - 1);
    var start = span - values.length;
    var points = values.map(function (value, index) {
      return ((start + index) * step).toFixed(1) + ',' + (31 - (value / max) * 30).toFixed(1);
    });
    svg.setAttribute('points', points.join(' '));
  }

  /** Per second from 'from' to 'to' (snapshots); 0 without time between them. */
  function rate(from, to, key) {
    var seconds = (to.time - from.time) / 1000;
    return seconds > 0 ? Math.max(0, to[key] - from[key]) / seconds : 0;
  }

  function showStats(stats) {
    var plottedPublish = 0;
    var plottedDelivery = 0;
    var evictedNow = 0;
    var resetsNow = 0;
    if (previous !== undefined) {
      plottedPublish = rate(previous, stats, 'published');
      plottedDelivery = rate(previous, stats, 'delivered');
      evictedNow = Math.max(0, stats.evicted - previous.evicted);
      resetsNow = Math.max(0, stats.resets - previous.resets);
    }
    previous = stats;
    // The rates shown are over the last few seconds: steadier to read than one interval's.
    recent.push(stats);
    while (recent.length > 2 && stats.time - recent[1].time >= WINDOW) recent.shift();
    var publishRate = rate(recent[0], stats, 'published');
    var deliveryRate = rate(recent[0], stats, 'delivered');
    var values = {
      connections: stats.connections, topics: stats.topics, publishRate: publishRate, deliveryRate: deliveryRate,
      evicted: stats.evicted, resets: stats.resets, published: stats.published, delivered: stats.delivered,
      waiting: stats.waiting, history: stats.history, dropped: stats.dropped, replayed: stats.replayed, gaps: stats.gaps,
      tokenExpired: stats.tokenExpired, malformed: stats.malformed,
      backplane: stats.backplaneConnected ? 'connected, lag ' + stats.backplaneLag + ' ms' : 'disconnected'
    };
    var plotted = { connections: stats.connections, topics: stats.topics, publishRate: plottedPublish, deliveryRate: plottedDelivery, evicted: evictedNow, resets: resetsNow };
    Array.prototype.forEach.call(document.querySelectorAll('[data-stat]'), function (element) {
      var value = values[element.dataset.stat];
      if (value === undefined) return;
      element.textContent = format(value);
      element.dataset.value = String(value);
    });
    SPARKS.forEach(function (name) {
      series[name].push(plotted[name]);
      if (series[name].length > POINTS) series[name].shift();
      draw(name);
    });
  }

  var statsStream;
  var retryTimer;
  var retryDelay = 1000;
  function connectStats() {
    if (statsStream) statsStream.close();
    clearTimeout(retryTimer);
    var status = $('stats-status');
    setStatus(status, 'connecting', 'connecting…');
    function again() {
      setStatus(status, 'connecting', 'reconnecting…');
      retryTimer = setTimeout(connectStats, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    }
    statsStream = openStream('ui/stats', $('subscriber-token').value.trim(), {
      open: function () { retryDelay = 1000; setStatus(status, 'live', 'live'); },
      event: function (event) { if (event.type === 'stats') showStats(JSON.parse(event.data)); },
      refused: function (code, text) {
        var hint = code === 401 || code === 403 ? ' (paste a subscriber token for every topic, then Use tokens)' : '';
        setStatus(status, 'refused', code + ': ' + text + hint);
        if (code === 429 || code >= 500) again();
      },
      end: again,
      failed: again
    });
  }

  // The console.
  var subscription;
  function stopSubscription() {
    if (subscription) subscription.close();
    subscription = undefined;
  }

  function showEvent(event) {
    var list = $('events');
    var item = document.createElement('li');
    var meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = new Date().toLocaleTimeString('en-GB') + ' ' + event.type + (event.id ? ' #' + event.id : '');
    var data = document.createElement('span');
    data.className = 'data';
    data.textContent = event.data;
    item.append(meta, data);
    list.prepend(item);
    while (list.children.length > LIST) list.lastElementChild.remove();
  }

  function subscribe(event) {
    event.preventDefault();
    stopSubscription();
    var topic = $('subscribe-topic').value.trim();
    var protocol = $('protocol').value;
    var status = $('subscribe-status');
    if (!topic) return setStatus(status, 'error', 'a topic is needed');
    var url = (protocol === 'mercure' ? '.well-known/mercure?topic=' : 'events?topic=') + encodeURIComponent(topic);
    $('events').replaceChildren();
    setStatus(status, 'connecting', 'connecting to ' + topic + '…');
    var mine = openStream(url, $('subscriber-token').value.trim(), {
      open: function () { setStatus(status, 'subscribed', 'subscribed to ' + topic + ' (' + protocol + ')'); },
      event: showEvent,
      refused: function (code, text) { setStatus(status, 'refused', 'refused: ' + code + ' ' + text); },
      end: function () { if (subscription === mine) setStatus(status, 'idle', 'the hub ended the stream'); },
      failed: function (error) { setStatus(status, 'error', 'failed: ' + error.message); }
    });
    subscription = mine;
  }

  function publish(event) {
    event.preventDefault();
    var topic = $('publish-topic').value.trim();
    var type = $('publish-type').value.trim();
    var data = $('publish-data').value;
    var token = $('publisher-token').value.trim();
    var result = $('publish-result');
    var headers = {};
    if (token) headers.authorization = 'Bearer ' + token;
    var url;
    var body;
    if ($('protocol').value === 'mercure') {
      url = '.well-known/mercure';
      body = new URLSearchParams({ topic: topic, data: data });
      if (type) body.set('type', type);
    } else {
      url = 'publish';
      headers['content-type'] = 'application/json';
      var message = { topic: topic, data: data };
      if (type) message.event = type;
      body = JSON.stringify(message);
    }
    setStatus(result, 'connecting', 'publishing…');
    fetch(url, { method: 'POST', headers: headers, body: body, credentials: 'omit', cache: 'no-store' }).then(
      function (response) {
        return response.text().then(function (text) {
          if (response.ok) setStatus(result, 'published', 'published, id ' + text.trim());
          else setStatus(result, 'refused', 'refused: ' + response.status + ' ' + text.trim());
        });
      },
      function (error) { setStatus(result, 'error', 'failed: ' + error.message); }
    );
  }

  $('use-tokens').addEventListener('click', connectStats);
  $('subscribe-form').addEventListener('submit', subscribe);
  $('unsubscribe').addEventListener('click', function () {
    stopSubscription();
    setStatus($('subscribe-status'), 'idle', 'not subscribed');
  });
  $('publish-form').addEventListener('submit', publish);
  connectStats();
})();
`;
