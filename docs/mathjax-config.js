// MathJax 2 settings for the Doxygen site (Doxyfile: MATHJAX_CODEFILE). docs/tools/site.py turns
// the pages' $...$ into Doxygen's \f$...\f$, which reaches MathJax as \( \); so $ stays plain text
// (shell variables in the API docs must not turn into math). AMSmath provides \tag{N}, the fixed
// equation numbers; AMSsymbols provides \mathbb.
MathJax.Hub.Config({
  tex2jax: { inlineMath: [['\\(', '\\)']], processEscapes: false },
  TeX: { extensions: ["AMSmath.js", "AMSsymbols.js"] },
  SVG: { font: "TeX", linebreaks: { automatic: false } }
});
