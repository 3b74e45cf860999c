"""Figures and widgets, one module per notebook topic, kept apart from the code that computes
(as libfmp keeps ``_plot`` modules beside its compute modules): ``explore`` (02), ``chunking`` (03),
``pipeline`` (04), ``training`` (05), ``evaluation`` (06), ``scenes`` (07). Plot modules import the
compute layers, never the other way round."""
