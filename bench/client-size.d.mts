export declare const CLIENT_SIZE_BUDGET: number;
export declare function clientSize(): Promise<{ minified: number; gzipped: number }>;
