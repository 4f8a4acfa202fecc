/** The demo's page: everything the browser side of SSE needs, in a dozen lines. */
export const demoPage = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>serve-sse demo</title>
  </head>
  <body>
    <h1>serve-sse demo</h1>
    <ul id="events"></ul>
    <script>
      const list = document.getElementById('events');
      const show = (text) => list.appendChild(document.createElement('li')).append(text);
      const source = new EventSource('/events');
      source.addEventListener('open', () => show('Server connected :)'));
      source.addEventListener('my-custom-event', (event) => show(event.data));
      source.addEventListener('error', () => show('Server unavailable :('));
    </script>
  </body>
</html>
`;
