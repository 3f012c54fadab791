// ipywidgets 8 typesets widget labels with MathJax 2's API, MathJax.Hub.Queue(["Typeset", ...]),
// whenever window.MathJax exists. The site loads MathJax 3, which has no Hub; give it that one
// call, mapped to MathJax 3's typesetPromise. Loaded (deferred) right after MathJax.
(function () {
  var mathjax = window.MathJax;
  if (!mathjax || mathjax.Hub) {
    return;
  }
  mathjax.Hub = {
    Queue: function (job) {
      var element = job && job[2];
      if (mathjax.startup && mathjax.startup.promise && mathjax.typesetPromise) {
        mathjax.startup.promise = mathjax.startup.promise.then(function () {
          return mathjax.typesetPromise(element ? [element] : undefined);
        });
      }
    },
  };
})();
