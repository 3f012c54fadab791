// Runs between the vendored RequireJS and the widget manager (vendor/html-manager/embed-amd.js).
// The manager finds its Font Awesome files relative to the RequireJS address of its own module,
// "@jupyter-widgets/html-manager/dist/libembed-amd", which would otherwise resolve under the
// page's folder; map that module path to the folder where the files really are.
require.config({
  paths: {
    "@jupyter-widgets/html-manager/dist": new URL("vendor/html-manager", document.currentScript.src).href,
  },
});
