"""One-shot (weight-sharing) searches: drivers that train a supernet, then score what it derives.

Unlike a :class:`~nasforge.strategy.base.Strategy`, which never trains and never reads data, a one-shot
search *uses* the data, the evaluator and the :class:`~nasforge.study.Study`, so it lives above them:
``darts`` (DARTS with the DARTS+ and beta-DARTS remedies). :func:`nasforge.search` runs it when
``strategy.name`` names it (``strategy.DARTS``).
"""
