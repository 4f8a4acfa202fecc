export default function Page() {
  return <p>serve-sse fixture: GET /events?topic=…, POST /publish?topic=…, GET /stats</p>;
}
