// Build the served assets into src/escape_fhir/pages/static/nhsuk: the compiled CSS, the NHS.UK frontend
// script and its images. Run by scripts/build-frontend (./dev setup) after `npm ci`.
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as sass from "sass";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "node_modules", "nhsuk-frontend", "dist", "nhsuk");
const out = join(here, "..", "src", "escape_fhir", "pages", "static", "nhsuk");

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const css = sass.compile(join(here, "pages.scss"), {
  loadPaths: [join(here, "node_modules")],
  style: "compressed",
  quietDeps: true,
  silenceDeprecations: ["import"],
});
writeFileSync(join(out, "pages.css"), css.css);
cpSync(join(dist, "nhsuk-frontend.min.js"), join(out, "nhsuk-frontend.min.js"));
cpSync(join(dist, "assets"), join(out, "assets"), { recursive: true });
console.log(`built ${out}`);
