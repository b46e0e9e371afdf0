"""The metric names each task reports (no torch: `graphrec report` and the CLI read them without it)."""

RANKING_METRICS = ("recall", "ndcg", "precision", "hit", "mrr", "coverage", "arp", "recall_head", "recall_mid",
                   "recall_tail", "ndcg_head", "ndcg_mid", "ndcg_tail")
REGRESSION_METRICS = ("rmse", "mae")
CLASSIFICATION_METRICS = ("auc", "logloss")
