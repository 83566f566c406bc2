import { STATUS_CODES } from 'node:http';

/** "200 OK" etc. built once: uWS wants the whole status line, and the upstream's reason phrase carries no meaning. */
export const STATUS_LINES: string[] = [];
for (let code = 100; code < 600; code++) STATUS_LINES[code] = `${code} ${STATUS_CODES[code] ?? 'Status'}`;
