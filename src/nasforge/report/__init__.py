"""After the search: final retraining, export, and the HTML report (plots, importance, trial table).

Submodules import their heavy dependencies (torch, matplotlib, pandas, scikit-learn) themselves,
so importing this package costs nothing.
"""
