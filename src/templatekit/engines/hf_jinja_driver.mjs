// templatekit's driver for @huggingface/jinja (the engine of transformers.js and Hugging Face chat UIs),
// installed by `templatekit engines install hf-jinja` with npm into the engines cache.
//
// Usage: node hf_jinja_driver.mjs PACKAGE_ENTRY  (the package's dist/index.js)
// Protocol: one JSON object per line on stdin, one JSON object per line on stdout.
//   {"op": "render", "template": T, "context": {...}} -> {"ok": true, "text": S}
//   failures -> {"ok": false, "kind": "parse" | "raise" | "render", "error": M}
// The context is passed to Template.render() as transformers.js' apply_chat_template does.
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const { Environment, Template } = await import(pathToFileURL(process.argv[2]).href);
const cache = new Map();

// The package's raise_exception throws a plain Error; the global installed instead throws the same
// message, tagged, so that a template's own refusal can be told from an engine error.
class Raised extends Error {}
const declare = Environment.prototype.set;
Environment.prototype.set = function (name, value) {
  if (name === "raise_exception") {
    value = (message) => {
      throw new Raised(message);
    };
  }
  return declare.call(this, name, value);
};

function compile(text) {
  let template = cache.get(text);
  if (template === undefined) {
    template = new Template(text);
    if (cache.size > 256) cache.clear();
    cache.set(text, template);
  }
  return template;
}

function handle(request) {
  let template;
  try {
    template = compile(request.template);
  } catch (error) {
    return { ok: false, kind: "parse", error: String(error) };
  }
  try {
    return { ok: true, text: template.render(request.context) };
  } catch (error) {
    if (error instanceof Raised) return { ok: false, kind: "raise", error: error.message };
    return { ok: false, kind: "render", error: String(error) };
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  let out;
  try {
    out = handle(JSON.parse(line));
  } catch (error) {
    out = { ok: false, kind: "protocol", error: String(error) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}
