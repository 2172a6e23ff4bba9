// Progressive enhancement only: every page works without JavaScript. With it, the NHS.UK frontend's
// components (error summary focus, conditional reveals, skip link) are started.
import { initAll } from "./nhsuk/nhsuk-frontend.min.js";

document.body.classList.add("js-enabled", "nhsuk-frontend-supported");
initAll();
