"""Screening before training: which candidates train at all, decided without training them.

``proxies`` holds the zero-cost proxies (``PROXIES``, the registry) and scores untrained networks;
``screener`` turns ``search.screen`` into the :class:`~nasforge.study.Study`'s screener (keep the best
share of each batch of valid candidates) and ``search.max_latency_ms`` into a check before training.
Beside the strategies: a screen chooses among their proposals, and like them it never trains.
"""
