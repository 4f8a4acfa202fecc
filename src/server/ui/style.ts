/** The dashboard's stylesheet (`GET /ui/app.css`). */
export const dashboardStyle = `:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #fff; --ink: #1c2430; --muted: #5f6b7a; --line: #d9dee5;
  --accent: #2563eb; --good: #15803d; --bad: #b91c1c;
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #111418; --panel: #1a1f26; --ink: #e5e9ef; --muted: #98a3b3; --line: #2c333d; --accent: #60a5fa; --good: #4ade80; --bad: #f87171; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); }
header { display: flex; align-items: baseline; gap: 1rem; padding: .8rem 1.2rem; border-bottom: 1px solid var(--line); background: var(--panel); }
h1 { font-size: 1.2rem; margin: 0; }
h2 { font-size: 1rem; margin: 0 0 .6rem; }
h3 { font-size: .95rem; margin: 0 0 .5rem; }
main { padding: 1rem 1.2rem; display: grid; gap: 1rem; }
[data-state] { color: var(--muted); }
[data-state="live"], [data-state="subscribed"], [data-state="published"] { color: var(--good); }
[data-state="refused"], [data-state="error"] { color: var(--bad); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: .8rem; }
.tile { margin: 0; padding: .7rem .8rem .5rem; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
.tile figcaption { color: var(--muted); font-size: .85rem; }
.tile output { font-size: 1.8rem; font-variant-numeric: tabular-nums; font-weight: 600; }
.tile .unit { color: var(--muted); margin-left: .2rem; }
.spark { display: block; width: 100%; height: 40px; margin-top: .3rem; }
.spark polyline { fill: none; stroke: var(--accent); stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.figures dl { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: .3rem 1rem; margin: 0; padding: .7rem .8rem; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
.figures dt { color: var(--muted); font-size: .8rem; }
.figures dd { margin: 0 0 .3rem; font-variant-numeric: tabular-nums; }
.console { padding: .8rem; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; }
.row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: .5rem; }
.tokens label { flex: 1 1 280px; display: flex; flex-direction: column; color: var(--muted); font-size: .85rem; }
.tokens input { flex: none; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: .8rem; }
.panel { border: 1px solid var(--line); border-radius: 6px; padding: .6rem; }
input, select, textarea, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .3rem .45rem; }
input { flex: 1 1 140px; min-width: 0; }
textarea { width: 100%; resize: vertical; font-family: ui-monospace, monospace; margin-bottom: .5rem; }
button { cursor: pointer; background: var(--accent); color: #fff; border-color: var(--accent); }
button[type="button"]#unsubscribe { background: transparent; color: var(--ink); border-color: var(--line); }
#subscribe-status, #publish-result { margin: 0; font-size: .85rem; overflow-wrap: anywhere; }
#events { margin: .4rem 0 0; padding-left: 2rem; max-height: 260px; overflow: auto; font-family: ui-monospace, monospace; font-size: .8rem; }
#events li { padding: .15rem 0; border-bottom: 1px dashed var(--line); overflow-wrap: anywhere; }
#events .meta { color: var(--muted); margin-right: .5rem; }
`;
