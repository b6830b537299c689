"""Reading an experiment: the HTML report (plots, importance, trial table) and the JSON record.

Final retraining, the references and export live in :mod:`nasforge.final`. Submodules import their
heavy dependencies (torch, matplotlib, pandas, scikit-learn) themselves, so importing this package
costs nothing.
"""
