// Windmill's own flow validator (npm windmill-yaml-validator: the OpenFlow schema Windmill's editor
// integrations check flow.yaml against), on one file. Prints {"errors": [...]} (empty when valid),
// also for a broken file, so a test can show what was wrong.
// Usage: node validate_flow.mjs PATH/flow.yaml
import fs from "node:fs";
import { WindmillYamlValidator } from "windmill-yaml-validator";

const { errors, parsed } = new WindmillYamlValidator().validate(fs.readFileSync(process.argv[2], "utf8"), {
  type: "flow",
});
const yamlErrors = (parsed.diagnostics ?? []).filter((d) => d.severity === 0).map((d) => d.message);
console.log(
  JSON.stringify({
    errors: [
      ...yamlErrors.map((message) => ({ path: "", message })),
      ...errors.map((e) => ({ path: e.instancePath, message: e.message, params: e.params })),
    ],
  }),
);
