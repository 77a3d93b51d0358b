// Validate AsyncAPI documents with the official @asyncapi/parser: every diagnostic of severity
// error, warning, information or hint is printed, and any error or warning fails the run.
// Usage: node validate.mjs FILE...   (npm install in this directory first: make asyncapi-check)
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const parser = new Parser();
const names = { 0: "error", 1: "warning", 2: "information", 3: "hint" };
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"), { source: file });
  const bad = diagnostics.filter(
    (d) => d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning,
  );
  for (const d of diagnostics) {
    console.log(`${file}: ${names[d.severity]}: ${d.code}: ${d.message} at /${d.path.join("/")}`);
  }
  if (document === undefined || bad.length > 0) {
    failed = true;
    console.log(`${file}: INVALID (${bad.length} error(s) or warning(s))`);
  } else {
    console.log(`${file}: valid, AsyncAPI ${document.version()}, ${document.channels().length} channels`);
  }
}
process.exit(failed ? 1 : 0);
