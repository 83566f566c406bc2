/**
 * A JSON body through the transform policy's program (src/policies/transform/run.ts), on the event loop: parse,
 * operations / scope filtering / masking, serialise. Per body size (1, 16, 256 KB) and program; divide ns/op by the
 * size in KB for the cost per KB (docs/transform.md). The pool's hand-off is measured by transform-pool.ts.
 */
import { defineSuite, consume, type MicroCase } from '../../src/bench/micro-api.js';
import { BodyProgram } from '../../src/policies/transform/program.js';
import { transformBody } from '../../src/policies/transform/run.js';
import { body, PROGRAMS, SIZES } from './transform-bodies.js';

export default defineSuite({
  name: 'transform',
  description: 'a JSON response body through parse, operations, scopes, masking and serialise, per size',
  cases(): MicroCase[] {
    const cases: MicroCase[] = [];
    for (const [size, bytes] of SIZES) {
      const input = body(bytes);
      for (const [name, config] of PROGRAMS) {
        const program = new BodyProgram(config, 'response');
        cases.push({ name: `${name} ${size}`, fn: () => consume(transformBody(program, 'json', input, ['other'], null)) });
      }
    }
    return cases;
  },
});
