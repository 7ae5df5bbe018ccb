// A flow's JavaScript expressions evaluated the way Windmill's worker evaluates them
// (backend/windmill-worker/src/js_eval.rs, eval_timeout and eval): the expression, trimmed, becomes
// the body of an async function (`return <expr>` unless it already holds "return "), with
// flow_input, results (earlier steps' results by id), previous_result and, for stop_after_if, result
// in scope; its value is JSON.stringify(x ?? null), so undefined reads back as null.
// Usage: node eval_expr.mjs < {"context": {...}, "exprs": {"name": "expr", ...}}
//        -> {"name": value, ...} or {"name": {"__error__": "message"}}
import fs from "node:fs";

const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const { context, exprs } = JSON.parse(fs.readFileSync(0, "utf8"));
const names = ["flow_input", "results", "previous_result", "result"];
const out = {};
for (const [name, raw] of Object.entries(exprs)) {
  const expr = raw.trim();
  const body = expr.includes("return ") ? expr : `return ${expr}`;
  try {
    const value = await new AsyncFunction(...names, body)(...names.map((n) => context[n]));
    out[name] = JSON.parse(JSON.stringify(value ?? null));
  } catch (error) {
    out[name] = { __error__: String(error) };
  }
}
console.log(JSON.stringify(out));
