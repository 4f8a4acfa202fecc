// The CommonJS build resolves modules the Node 10 way, which does not read `exports` and so cannot
// find the types of the polyfill's side-effect-free entry point (`urlpattern-polyfill/urlpattern`,
// which unlike the package root does not install a global URLPattern). They are the root's types.
declare module 'urlpattern-polyfill/urlpattern' {
  export { URLPattern } from 'urlpattern-polyfill';
}
