// Re-infer script.schema.json from script.py the way Windmill does, with Windmill's own code:
// parse_python (npm windmill-parser-wasm-py, the parser Windmill runs) gives main's arguments;
// argSigToJsonSchemaType (npm windmill-utils-internal, the function windmill-cli bundles) turns
// each into a property, keeping what the stored schema says. The loop below follows windmill-cli's
// inferSchema (src/utils/metadata.ts): properties rebuilt in argument order, each one's keys
// sorted, its default set from the signature, required = arguments without a default.
// Usage: node infer.mjs SCRIPT.py STORED.schema.json  ->  {"args": [...], "schema": {...}}
import fs from "node:fs";
import { createRequire } from "node:module";
import { initSync, parse_python } from "windmill-parser-wasm-py";


const require = createRequire(import.meta.url);
// Its ESM build has directory imports Node refuses; the CommonJS build is the same code.
const { argSigToJsonSchemaType } = require("windmill-utils-internal");
const wasm = require.resolve("windmill-parser-wasm-py/windmill_parser_wasm_bg.wasm");
initSync({ module: fs.readFileSync(wasm) });

const [scriptPath, schemaPath] = process.argv.slice(2);
const parsed = JSON.parse(parse_python(fs.readFileSync(scriptPath, "utf8")));
if (parsed.type === "Invalid") {
  console.error(`Windmill cannot parse ${scriptPath}: ${parsed.error}`);
  process.exit(1);
}
const schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));
const old = JSON.parse(JSON.stringify(schema.properties ?? {}));
schema.required = [];
schema.properties = {};
for (const arg of parsed.args) {
  const prop = arg.name in old ? old[arg.name] : { description: "", type: "" };
  const sorted = Object.fromEntries(Object.keys(prop).sort().map((k) => [k, prop[k]]));
  argSigToJsonSchemaType(arg.typ, sorted);
  if (arg.otyp && arg.otyp.includes("[") && arg.otyp.includes("|")) sorted.originalType = arg.otyp;
  sorted.default = arg.default;
  schema.properties[arg.name] = sorted;
  if (!arg.has_default && !schema.required.includes(arg.name)) schema.required.push(arg.name);
}
console.log(JSON.stringify({ args: parsed.args, schema }));
