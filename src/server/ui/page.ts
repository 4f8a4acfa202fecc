/**
 * The dashboard's HTML (`GET /ui`). No inline script or style: the Content-Security-Policy allows
 * only the page's own files (`ui/app.js`, `ui/app.css`). Paths are relative, so the page also
 * works behind a proxy that mounts the hub under a prefix.
 */
const tile = (stat: string, label: string, unit: string, spark: boolean): string => `
      <figure class="tile" data-tile="${stat}">
        <figcaption>${label}</figcaption>
        <output data-stat="${stat}">–</output>${unit === '' ? '' : `<span class="unit">${unit}</span>`}
        ${spark ? `<svg class="spark" data-spark="${stat}" viewBox="0 0 120 32" preserveAspectRatio="none" aria-hidden="true"><polyline points=""></polyline></svg>` : ''}
      </figure>`;

export const dashboardPage = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <title>serve-sse hub</title>
    <link rel="stylesheet" href="ui/app.css">
    <script src="ui/app.js" defer></script>
  </head>
  <body>
    <header>
      <h1>serve-sse hub</h1>
      <span id="stats-status" data-state="connecting">connecting…</span>
    </header>
    <main>
    <section class="tiles" aria-label="Figures">${[
      tile('connections', 'Connections', '', true),
      tile('topics', 'Topics', '', true),
      tile('publishRate', 'Publish rate, last 5 s', '/s', true),
      tile('deliveryRate', 'Delivery rate, last 5 s', '/s', true),
      tile('evicted', 'Evicted (slow clients cut)', '', true),
      tile('resets', 'Resets', '', true),
    ].join('')}
    </section>
    <section class="figures" aria-label="More figures">
      <dl>
        <div><dt>Published</dt><dd data-stat="published">–</dd></div>
        <div><dt>Delivered</dt><dd data-stat="delivered">–</dd></div>
        <div><dt>Waiting</dt><dd data-stat="waiting">–</dd></div>
        <div><dt>History</dt><dd data-stat="history">–</dd></div>
        <div><dt>Dropped</dt><dd data-stat="dropped">–</dd></div>
        <div><dt>Replayed</dt><dd data-stat="replayed">–</dd></div>
        <div><dt>Gaps</dt><dd data-stat="gaps">–</dd></div>
        <div><dt>Tokens expired</dt><dd data-stat="tokenExpired">–</dd></div>
        <div><dt>Malformed requests</dt><dd data-stat="malformed">–</dd></div>
        <div><dt>Backplane</dt><dd data-stat="backplane">–</dd></div>
      </dl>
    </section>
    <section class="console" aria-label="Console">
      <h2>Console</h2>
      <div class="row tokens">
        <label>Subscriber token <input id="subscriber-token" type="password" autocomplete="off" spellcheck="false" placeholder="needed when the hub has a subscriber key"></label>
        <label>Publisher token <input id="publisher-token" type="password" autocomplete="off" spellcheck="false" placeholder="a JWT signed with the publisher key"></label>
        <button id="use-tokens" type="button">Use tokens</button>
      </div>
      <div class="row">
        <label>Protocol
          <select id="protocol">
            <option value="native">native (GET /events, POST /publish)</option>
            <option value="mercure">Mercure (/.well-known/mercure)</option>
          </select>
        </label>
      </div>
      <div class="columns">
        <form id="subscribe-form" class="panel">
          <h3>Latest events of a topic</h3>
          <div class="row">
            <input id="subscribe-topic" required placeholder="topic" spellcheck="false">
            <button id="subscribe" type="submit">Subscribe</button>
            <button id="unsubscribe" type="button">Stop</button>
          </div>
          <p id="subscribe-status" data-state="idle">not subscribed</p>
          <ol id="events" reversed></ol>
        </form>
        <form id="publish-form" class="panel">
          <h3>Publish</h3>
          <div class="row">
            <input id="publish-topic" required placeholder="topic" spellcheck="false">
            <input id="publish-type" placeholder="event type (optional)" spellcheck="false">
          </div>
          <textarea id="publish-data" rows="3" placeholder="data" spellcheck="false"></textarea>
          <div class="row">
            <button id="publish" type="submit">Publish</button>
            <span id="publish-result" data-state="idle"></span>
          </div>
        </form>
      </div>
    </section>
    </main>
  </body>
</html>
`;
