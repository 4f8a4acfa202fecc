// The fixture app for tests/next/next.test.ts. serve-sse needs nothing here: its Cache-Control:
// no-transform keeps Next's compression off the stream (see docs/frameworks.md).
/** @type {import('next').NextConfig} */
const nextConfig = {
  // The test builds into a directory of its own (.next-test-<pid>), so two runs never share one.
  distDir: process.env.SERVE_SSE_NEXT_DIST_DIR || '.next',
};
export default nextConfig;
