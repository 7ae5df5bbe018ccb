// Read a `./dev windmill-export` folder the way windmill-cli 1.819 does for `wmill sync push`
// (src/commands/script/script.ts handleFile, src/utils/metadata.ts parseMetadataFile/replaceLock,
// src/core/resource-folders.ts): YAML with the `!inline` tag, the lock read from the inlined path,
// the remote path = the file path up to its first dot, resource types only at the root.
// Usage: node export.mjs DIR  ->  {"scripts": {remotePath: {...payload}}, "resourceTypes": {name: {...}}}
import fs from "node:fs";
import path from "node:path";
import { parse } from "yaml";

const inlineTag = { tag: "!inline", resolve: (value) => "!inline " + value };
const dir = process.argv[2];
const readYaml = (p) => parse(fs.readFileSync(p, "utf8"), { customTags: [inlineTag] });

function walk(d, base = "") {
  return fs.readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(d, e.name), path.join(base, e.name)) : [path.join(base, e.name)],
  );
}

const out = { scripts: {}, resourceTypes: {}, config: null };
for (const file of walk(dir)) {
  if (file === "wmill.yaml") out.config = readYaml(path.join(dir, file));
  else if (file.endsWith(".resource-type.yaml") && !file.includes(path.sep)) {
    out.resourceTypes[file.slice(0, -".resource-type.yaml".length)] = readYaml(path.join(dir, file));
  } else if (file.endsWith(".py") && file.startsWith("f" + path.sep) && !file.includes(".flow" + path.sep)) {
    // (a .py inside a <name>.flow folder is an inline step of that flow, not a script)
    const remote = file.substring(0, file.indexOf("."));
    const payload = readYaml(path.join(dir, remote + ".script.yaml"));
    if (payload?.lock?.startsWith("!inline ")) {
      payload.lock = fs.readFileSync(path.join(dir, payload.lock.split(" ")[1]), "utf8");
    }
    payload.content = fs.readFileSync(path.join(dir, file), "utf8");
    payload.language = "python3";
    out.scripts[remote] = payload;
  }
}
console.log(JSON.stringify(out));
