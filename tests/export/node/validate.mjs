// Validate glTF files with the Khronos glTF validator; prints one JSON object per file on stdout.
// usage: node validate.mjs FILE.glb ...
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

for (const path of process.argv.slice(2)) {
  const report = await validator.validateBytes(new Uint8Array(await readFile(path)), { uri: path, maxIssues: 100 });
  const messages = report.issues.messages.map((m) => ({ code: m.code, severity: m.severity, message: m.message, pointer: m.pointer }));
  console.log(JSON.stringify({ path, errors: report.issues.numErrors, warnings: report.issues.numWarnings,
    infos: report.issues.numInfos, hints: report.issues.numHints, messages }));
}
