import { existsSync, readFileSync } from 'node:fs';
import type { BudgetOutcome, ModeResult, ScenarioResult } from './results.js';

/**
 * Budgets: limits on measured numbers, checked after a run (bench/budgets.json). `nanogate bench --gate` exits
 * non-zero when one is broken. A budget names a scenario ("*" = every scenario that ran) and a metric path into
 * that scenario's result:
 *
 *   <mode>.<target>.<field>   mode: fixed | max;  target: direct | gateway | added
 *                             field: p50 p90 p95 p99 p999 max (µs), rps, errors, non2xx, gatewayCpuUsPerReq
 *   <mode>.ratio              gateway throughput / direct throughput
 *
 * and a "max" and/or "min". Example:
 *   { "scenario": "passthrough", "metric": "fixed.added.p95", "max": 1000, "unit": "µs",
 *     "note": "gateway-added P95 under 1 ms at 2,000 req/s" }
 * "short": false leaves a budget out of --short runs (for numbers too noisy to gate on with short phases).
 */

export interface Budget {
  scenario: string;
  metric: string;
  max?: number;
  min?: number;
  unit?: string;
  note?: string;
  short?: boolean;
}

export interface BudgetFile {
  budgets: Budget[];
}

export function loadBudgets(file: string): Budget[] {
  if (!existsSync(file)) throw new Error(`budgets file not found: ${file}`);
  const raw = JSON.parse(readFileSync(file, 'utf8')) as BudgetFile;
  if (!raw || !Array.isArray(raw.budgets)) throw new Error(`${file}: expected {"budgets": [...]}`);
  raw.budgets.forEach((b, i) => {
    if (typeof b.scenario !== 'string' || typeof b.metric !== 'string') throw new Error(`${file}: budgets[${i}] needs "scenario" and "metric"`);
    if (b.max === undefined && b.min === undefined) throw new Error(`${file}: budgets[${i}] needs "max" or "min"`);
    if (!/^(fixed|max)\.((direct|gateway|added)\.[A-Za-z0-9]+|ratio)$/.test(b.metric)) {
      throw new Error(`${file}: budgets[${i}].metric "${b.metric}" is not <fixed|max>.<direct|gateway|added>.<field> or <fixed|max>.ratio`);
    }
  });
  return raw.budgets;
}

export function metricValue(s: ScenarioResult, metric: string): number | null | undefined {
  const [mode, target, field] = metric.split('.');
  const m: ModeResult | null = mode === 'fixed' ? s.fixed : mode === 'max' ? s.max : null;
  if (!m) return undefined; // mode not measured
  if (target === 'ratio') return m.ratio;
  const t = (m as unknown as Record<string, Record<string, unknown>>)[target];
  const v = t?.[field];
  if (typeof v === 'number') return v;
  if (v === null) return null;
  return undefined;
}

const num = (x: number): string => (Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : String(Math.round(x * 1000) / 1000));

export function checkBudgets(budgets: Budget[], results: ScenarioResult[], short: boolean): BudgetOutcome[] {
  const out: BudgetOutcome[] = [];
  for (const b of budgets) {
    const unit = b.unit ?? (/\.p\d+$|\.max$/.test(b.metric) ? 'µs' : '');
    const u = unit ? ` ${unit}` : '';
    const targets = b.scenario === '*' ? results : results.filter((r) => r.name === b.scenario);
    for (const s of targets) {
      const base = { scenario: s.name, metric: b.metric, limit: { max: b.max, min: b.min }, unit, note: b.note ?? '' };
      if (short && b.short === false) {
        out.push({ ...base, value: null, status: 'skipped', by: null, message: 'not checked in --short runs' });
        continue;
      }
      const v = metricValue(s, b.metric);
      if (v === undefined) {
        out.push({ ...base, value: null, status: 'skipped', by: null, message: 'not measured in this run' });
        continue;
      }
      if (v === null || !Number.isFinite(v)) {
        out.push({ ...base, value: null, status: 'broken', by: null, message: 'no value (no responses?)' });
        continue;
      }
      if (b.max !== undefined && v > b.max) {
        const by = v - b.max;
        const pct = b.max !== 0 ? ` (${Math.round((by / Math.abs(b.max)) * 100)}%)` : '';
        out.push({ ...base, value: v, status: 'broken', by, message: `${num(v)}${u} > max ${num(b.max)}${u}: over by ${num(by)}${u}${pct}` });
      } else if (b.min !== undefined && v < b.min) {
        const by = b.min - v;
        const pct = b.min !== 0 ? ` (${Math.round((by / Math.abs(b.min)) * 100)}%)` : '';
        out.push({ ...base, value: v, status: 'broken', by, message: `${num(v)}${u} < min ${num(b.min)}${u}: under by ${num(by)}${u}${pct}` });
      } else {
        const spare = b.max !== undefined ? b.max - v : v - (b.min as number);
        out.push({ ...base, value: v, status: 'ok', by: -spare, message: `${num(v)}${u} within ${b.max !== undefined ? `max ${num(b.max)}` : `min ${num(b.min!)}`}${u} (${num(spare)}${u} to spare)` });
      }
    }
  }
  return out;
}
