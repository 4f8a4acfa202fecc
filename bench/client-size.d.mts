import type { Metafile } from 'esbuild';
export declare const CLIENT_SIZE_BUDGET: number;
export declare function clientBundle(): Promise<{ code: Uint8Array; metafile: Metafile }>;
export declare function clientSize(): Promise<{ minified: number; gzipped: number }>;
