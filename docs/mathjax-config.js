// MathJax 2 settings for the Doxygen pages made from docs/*.md (Doxyfile: MATHJAX_CODEFILE).
// Doxygen's default only knows \( \) for inline math; these pages use $ $ like GitHub does.
// AMSmath provides \tag{N} (the fixed equation numbers), AMSsymbols provides \mathbb.
MathJax.Hub.Config({
  tex2jax: { inlineMath: [['$', '$'], ['\\(', '\\)']], processEscapes: true },
  TeX: { extensions: ["AMSmath.js", "AMSsymbols.js"] }
});
