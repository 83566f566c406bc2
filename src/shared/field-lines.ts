/**
 * Field lines as PolicyContext.addResponseFields takes them ("name: value" joined by CRLF, none at the end), split
 * into `into` as name, value… for the paths that write one header at a time.
 */
export function splitFieldLines(lines: string, into: string[]): void {
  for (const line of lines.split('\r\n')) {
    const colon = line.indexOf(':');
    into.push(line.slice(0, colon), line.slice(colon + 1).trim());
  }
}
