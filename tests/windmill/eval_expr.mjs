// A flow's JavaScript expressions evaluated the way Windmill's worker evaluates them
// (backend/windmill-worker/src/js_eval.rs, eval_timeout and eval): the expression, trimmed, becomes
// the body of an async function (`return <expr>` unless it already holds "return "), with
// flow_input, results (earlier steps' results by id), previous_result and, for stop_after_if and a
// branch's predicate, result in scope; its value is JSON.stringify(x ?? null), so undefined reads back
// as null. An expression that throws gives {"__error__": message} (Windmill: an error, see flows.py).
// Usage: node eval_expr.mjs < {"context": {...}, "exprs": {"name": "expr", ...}}
//        -> {"name": value, ...} or {"name": {"__error__": "message"}}
//        node eval_expr.mjs < {"batch": [{"context": ..., "exprs": ...}, ...]} -> [one answer per item]
//        node eval_expr.mjs --serve: one request a line on stdin, one answer a line on stdout, until EOF
//        (a worker evaluates in its own process, in milliseconds: no Node start per expression)
import fs from "node:fs";
import readline from "node:readline";

const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
const names = ["flow_input", "results", "previous_result", "result"];

async function evaluate({ context, exprs }) {
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
  return out;
}

if (process.argv.includes("--serve")) {
  for await (const line of readline.createInterface({ input: process.stdin })) {
    fs.writeSync(1, JSON.stringify(await evaluate(JSON.parse(line))) + "\n");
  }
} else {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const answer = input.batch ? await Promise.all(input.batch.map(evaluate)) : await evaluate(input);
  fs.writeSync(1, JSON.stringify(answer) + "\n");
}
